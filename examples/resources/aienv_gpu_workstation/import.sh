# A workstation is imported by its id, <cloud>/<region>/<instance id>.
# Only machines created by this provider (tagged aienv-name) can be imported.
terraform import aienv_gpu_workstation.dev aws/us-east-1/i-0123456789abcdef0
