# A GPU workstation in a network managed with the hashicorp/aws provider: a VPC
# and public subnet from aws_subnet (passed in as subnet_id), and an EFS file
# system for datasets that only the workstation may mount (a rule that uses the
# workstation's firewall_id as its source).
#
# aienv manages the ingress rules for `ports` from `allowed_cidrs` on the
# workstation's own security group (described "managed by aienv"). Rules others
# add to that group are left alone, but open the workstation's own ports and
# address ranges with `ports` and `allowed_cidrs`.

terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
    aienv = {
      source  = "aienv/aienv"
      version = "~> 0.1"
    }
  }
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "my_cidr" {
  description = "Who may reach the workstation (SSH, Jupyter, TensorBoard)."
  type        = string
  default     = "203.0.113.7/32"
}

provider "aws" {
  region = var.region
}

provider "aienv" {
  default_tags = { project = "vision" }
  aws {
    region = var.region
  }
}

# --- Network (hashicorp/aws) ---------------------------------------------------

resource "aws_vpc" "ml" {
  cidr_block           = "10.42.0.0/16"
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = { Name = "ml" }
}

resource "aws_internet_gateway" "ml" {
  vpc_id = aws_vpc.ml.id
}

resource "aws_subnet" "gpu" {
  vpc_id                  = aws_vpc.ml.id
  cidr_block              = "10.42.1.0/24"
  availability_zone       = "${var.region}a"
  map_public_ip_on_launch = true
  tags                    = { Name = "ml-gpu" }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.ml.id

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.ml.id
  }
}

resource "aws_route_table_association" "gpu" {
  subnet_id      = aws_subnet.gpu.id
  route_table_id = aws_route_table.public.id
}

# --- The workstation (aienv) ---------------------------------------------------

resource "aienv_gpu_workstation" "dev" {
  name                   = "vision-dev"
  gpu                    = "A10G"
  subnet_id              = aws_subnet.gpu.id # zone and VPC follow the subnet
  allowed_cidrs          = [var.my_cidr]
  auto_stop_idle_minutes = 60
  ssh_public_key         = file("~/.ssh/id_ed25519.pub")

  # The subnet needs its route to the internet before the machine boots.
  depends_on = [aws_route_table_association.gpu]
}

# --- Shared datasets on EFS, reachable from the workstation only ---------------

resource "aws_efs_file_system" "datasets" {
  encrypted = true
  tags      = { Name = "datasets" }
}

resource "aws_security_group" "efs" {
  name        = "datasets-efs"
  description = "NFS for the datasets file system"
  vpc_id      = aws_vpc.ml.id
}

resource "aws_vpc_security_group_ingress_rule" "nfs_from_workstation" {
  security_group_id            = aws_security_group.efs.id
  referenced_security_group_id = aienv_gpu_workstation.dev.firewall_id
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  description                  = "NFS from the GPU workstation"
}

resource "aws_efs_mount_target" "gpu" {
  file_system_id  = aws_efs_file_system.datasets.id
  subnet_id       = aws_subnet.gpu.id
  security_groups = [aws_security_group.efs.id]
}

output "ssh_command" {
  value = aienv_gpu_workstation.dev.ssh_command
}

output "mount_datasets" {
  value = "sudo mount -t nfs4 -o nfsvers=4.1 ${aws_efs_mount_target.gpu.ip_address}:/ /mnt/datasets"
}
