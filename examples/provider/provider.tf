terraform {
  required_providers {
    aienv = {
      source  = "aienv/aienv"
      version = "~> 0.1"
    }
  }
}

# Credentials come from the AWS SDK's default chain: AWS_ACCESS_KEY_ID /
# AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, SSO, web identity or an instance role.
provider "aienv" {
  default_cloud = "aws"

  # Merged under every resource's own tags.
  default_tags = {
    team        = "ml-research"
    cost-center = "gpu-dev"
  }

  aws {
    region = "us-east-1"
    # profile = "ml-dev"
  }
}
