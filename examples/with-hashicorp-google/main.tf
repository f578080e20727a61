# A GPU workstation on Google Cloud in a network managed with the hashicorp/google
# provider: a VPC network and subnetwork (passed in as subnet_id), a Filestore
# share for datasets that only the workstation may mount, and an extra firewall
# rule that lets Identity-Aware Proxy reach the workstation over SSH.
#
# aienv makes the workstation's own firewall rules (aienv-<name>, from `ports`
# and `allowed_cidrs`) and gives the instance the network tag aienv-<name>.
# Rules made with hashicorp/google under other names, such as the IAP rule
# below, are left alone by aienv.

terraform {
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.0"
    }
    aienv = {
      source  = "aienv/aienv"
      version = "~> 0.1"
    }
  }
}

variable "project" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  type    = string
  default = "us-central1"
}

variable "zone" {
  type    = string
  default = "us-central1-a"
}

variable "my_cidr" {
  description = "Who may reach the workstation (SSH, Jupyter, TensorBoard)."
  type        = string
  default     = "203.0.113.7/32"
}

provider "google" {
  project = var.project
  region  = var.region
  zone    = var.zone
}

provider "aienv" {
  default_cloud = "gcp"
  default_tags  = { project = "vision" } # labels on the instance and its disks

  gcp {
    project = var.project
    region  = var.region
    zone    = var.zone
  }
}

# --- Network (hashicorp/google) ------------------------------------------------

resource "google_compute_network" "ml" {
  name                    = "ml"
  auto_create_subnetworks = false
}

resource "google_compute_subnetwork" "gpu" {
  name                     = "ml-gpu"
  network                  = google_compute_network.ml.id
  region                   = var.region
  ip_cidr_range            = "10.42.1.0/24"
  private_ip_google_access = true
}

# --- The workstation (aienv) ---------------------------------------------------

resource "aienv_gpu_workstation" "dev" {
  name = "vision-dev"
  gpu  = "L4"
  zone = var.zone

  # The id (projects/P/regions/R/subnetworks/S) or the self_link both work.
  # The firewall rules go into the subnetwork's network.
  subnet_id = google_compute_subnetwork.gpu.id

  allowed_cidrs          = [var.my_cidr]
  auto_stop_idle_minutes = 60
  ssh_public_key         = file("~/.ssh/id_ed25519.pub")
}

# --- SSH through Identity-Aware Proxy, by the workstation's network tag --------

resource "google_compute_firewall" "iap_ssh" {
  name          = "vision-dev-iap-ssh"
  network       = google_compute_network.ml.name
  direction     = "INGRESS"
  source_ranges = ["35.235.240.0/20"] # Google's IAP TCP forwarding range
  target_tags   = ["aienv-${aienv_gpu_workstation.dev.name}"]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }
}

# --- Shared datasets on Filestore, mountable from the workstation only ---------

resource "google_filestore_instance" "datasets" {
  name     = "datasets"
  location = var.zone
  tier     = "BASIC_HDD"

  file_shares {
    name        = "datasets"
    capacity_gb = 1024

    nfs_export_options {
      ip_ranges   = ["${aienv_gpu_workstation.dev.private_ip}/32"]
      access_mode = "READ_WRITE"
      squash_mode = "NO_ROOT_SQUASH"
    }
  }

  networks {
    network = google_compute_network.ml.name
    modes   = ["MODE_IPV4"]
  }
}

output "ssh_command" {
  value = aienv_gpu_workstation.dev.ssh_command
}

output "ssh_through_iap" {
  value = "gcloud compute ssh ${aienv_gpu_workstation.dev.ssh_user}@${aienv_gpu_workstation.dev.name} --zone ${aienv_gpu_workstation.dev.zone} --tunnel-through-iap"
}

output "jupyter_url" {
  value = aienv_gpu_workstation.dev.jupyter_url
}

output "mount_datasets" {
  value = "sudo apt-get install -y nfs-common && sudo mkdir -p /mnt/datasets && sudo mount -t nfs ${google_filestore_instance.datasets.networks[0].ip_addresses[0]}:/datasets /mnt/datasets"
}
