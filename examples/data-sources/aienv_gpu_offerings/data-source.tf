# Every way to get eight A100 40 GB GPUs on AWS in us-east-1, cheapest first
# (A100-80GB is a model of its own). The catalog is built into the provider:
# reading it makes no cloud call.
data "aienv_gpu_offerings" "a100x8" {
  cloud  = "aws"
  region = "us-east-1"
  gpu    = "A100:8"
}

# Every offering on any cloud that costs at most $1 per hour at the spot price.
data "aienv_gpu_offerings" "cheap" {
  max_hourly_usd = 1
  spot           = true
}

output "cheapest_a100x8" {
  value = {
    instance_type = data.aienv_gpu_offerings.a100x8.offerings[0].instance_type
    usd_per_hour  = data.aienv_gpu_offerings.a100x8.offerings[0].hourly_cost_usd
  }
}

output "cheap_single_gpu" {
  value = [
    for o in data.aienv_gpu_offerings.cheap.offerings :
    "${o.cloud} ${o.region} ${o.instance_type}: ${o.gpu_model} at $${o.hourly_cost_usd}/h"
    if o.gpu_count == 1
  ]
}
