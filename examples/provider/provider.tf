terraform {
  required_providers {
    aienv = {
      source  = "aienv/aienv"
      version = "~> 0.1"
    }
  }
}

provider "aienv" {
  # Where a workstation goes when it does not set `cloud`: "aws" or "gcp".
  default_cloud = "aws"

  # Merged under every resource's own tags (labels on Google Cloud).
  default_tags = {
    team        = "ml-research"
    cost-center = "gpu-dev"
  }

  # Credentials come from the AWS SDK's default chain: AWS_ACCESS_KEY_ID /
  # AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, SSO, web identity or an instance role.
  aws {
    region = "us-east-1"
    # profile = "ml-dev"
  }

  # Credentials: `credentials` or GOOGLE_CREDENTIALS (a service account key, JSON
  # contents or path), else Application Default Credentials
  # (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`,
  # or the metadata server).
  gcp {
    project = "my-ml-project" # else GOOGLE_PROJECT
    region  = "us-central1"   # else GOOGLE_REGION
    # zone  = "us-central1-a" # else GOOGLE_ZONE; otherwise the first zone offering the GPU
  }
}
