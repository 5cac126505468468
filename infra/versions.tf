# Terraform and provider versions for infra/ alone and for the packaged directory
# (`make package` drops the stale pins Chalice writes into chalice.tf.json).
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge({ project = "image-pipeline", stage = var.stage }, var.tags)
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
