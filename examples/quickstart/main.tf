# A GPU workstation for development: one T4, PyTorch image, SSH/Jupyter/TensorBoard
# reachable only from your own address. The same configuration runs on AWS or
# Google Cloud: choose with `-var cloud=gcp`.

terraform {
  required_providers {
    aienv = {
      source = "aienv/aienv"
    }
  }
}

variable "cloud" {
  description = "Where the workstation runs: aws or gcp."
  type        = string
  default     = "aws"
}

variable "aws_endpoint" {
  description = "EC2 endpoint override (the demo points it at a local emulator); null for real AWS."
  type        = string
  default     = null
}

variable "gcp_endpoint" {
  description = "Compute Engine endpoint override (the demo points it at a local fake); null for real Google Cloud."
  type        = string
  default     = null
}

variable "gcp_project" {
  description = "Google Cloud project for the workstation."
  type        = string
  default     = "my-ml-project"
}

variable "my_cidr" {
  description = "Who may reach the workstation."
  type        = string
  default     = "203.0.113.0/24"
}

provider "aienv" {
  default_cloud = var.cloud
  default_tags  = { team = "ml" }

  aws {
    region   = "us-east-1"
    endpoint = var.aws_endpoint
  }

  gcp {
    project  = var.gcp_project
    region   = "us-central1"
    endpoint = var.gcp_endpoint
  }
}

resource "aienv_gpu_workstation" "dev" {
  name                   = "quickstart"
  gpu                    = "T4"
  allowed_cidrs          = [var.my_cidr]
  auto_stop_idle_minutes = 60
  ssh_public_key         = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHWMvMYeYuaSIZey9Llmi901jvbPlR1IvE56UOAMkoSf demo@aienv"
}

output "ssh_command" { value = aienv_gpu_workstation.dev.ssh_command }
output "jupyter_url" { value = aienv_gpu_workstation.dev.jupyter_url }
output "instance_type" { value = aienv_gpu_workstation.dev.instance_type }
output "hourly_cost_usd" { value = aienv_gpu_workstation.dev.hourly_cost_usd }
