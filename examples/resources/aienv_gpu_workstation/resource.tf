# One NVIDIA A10G with the newest PyTorch deep-learning image, reachable over
# SSH, Jupyter and TensorBoard from one address only.
resource "aienv_gpu_workstation" "dev" {
  name           = "dev-box"
  gpu            = "A10G"
  image          = "pytorch"
  allowed_cidrs  = ["203.0.113.7/32"]
  ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHWMvMYeYuaSIZey9Llmi901jvbPlR1IvE56UOAMkoSf you@laptop"

  root_disk_gb = 200
  data_disk_gb = 500 # datasets and checkpoints

  # Stop after an hour without GPU use, logins or Jupyter kernels;
  # set running = false to stop it yourself (a stopped machine costs only its disks).
  auto_stop_idle_minutes = 60
  running                = true

  tags = {
    owner = "alice"
  }
}

# Four GPUs at the spot price; changing gpu later resizes the machine in place.
resource "aienv_gpu_workstation" "training" {
  name          = "finetune-l4"
  gpu           = "L4:4"
  spot          = true
  region        = "us-west-2"
  allowed_cidrs = ["203.0.113.0/24"]
  ports         = [22]
}

# The same kind of machine on Google Cloud: an N1 machine with an attached T4,
# the Deep Learning VM PyTorch image, and firewall rules for the default ports.
resource "aienv_gpu_workstation" "gcp" {
  name          = "dev-box-gcp"
  cloud         = "gcp"
  region        = "us-central1"
  gpu           = "T4"
  allowed_cidrs = ["203.0.113.7/32"]
}

output "ssh" {
  value = aienv_gpu_workstation.dev.ssh_command
}

output "jupyter" {
  value = aienv_gpu_workstation.dev.jupyter_url
}

output "cost_per_hour_usd" {
  value = aienv_gpu_workstation.dev.hourly_cost_usd + aienv_gpu_workstation.training.hourly_cost_usd
}
