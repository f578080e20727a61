# A workstation is imported by its id (the `id` attribute):
#   AWS:          aws/<region>/<instance id>
#   Google Cloud: gcp/<project>/<zone>/<instance name>
# Only machines created by this provider (tag or label aienv-name) can be imported.
terraform import aienv_gpu_workstation.dev aws/us-east-1/i-0123456789abcdef0

# On Google Cloud:
terraform import aienv_gpu_workstation.dev gcp/my-project/us-central1-a/dev-box
