locals {
  prefix = "image-pipeline-${var.stage}"
  # S3 bucket names are global: a random suffix (no `random` provider needed, see
  # terraform_data.suffix) unless name_suffix is given.
  suffix = var.name_suffix != "" ? var.name_suffix : terraform_data.suffix.output
  # Contract with the app (OUTPUT_PREFIX): CloudFront may read only renditions.
  output_prefix = "renditions/"
}

# 8 random hex digits drawn once: uuid() changes on every plan, ignore_changes keeps the
# first value in the state, so the names are stable until the state is destroyed.
resource "terraform_data" "suffix" {
  input = substr(replace(uuid(), "-", ""), 0, 8)

  lifecycle {
    ignore_changes = [input]
  }
}

# ---------------------------------------------------------------------- buckets
# Two distinct resources: the app's settings (deploy/package.py) and Chalice's bucket
# notification reference aws_s3_bucket.uploads and aws_s3_bucket.processed by name.
resource "aws_s3_bucket" "uploads" {
  bucket        = "${local.prefix}-uploads-${local.suffix}"
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket" "processed" {
  bucket        = "${local.prefix}-processed-${local.suffix}"
  force_destroy = var.force_destroy
}

locals {
  # Every bucket gets the same hardening below: private, owner-enforced, encrypted,
  # versioned, lifecycle rules, TLS only.
  buckets = {
    uploads   = aws_s3_bucket.uploads
    processed = aws_s3_bucket.processed
  }
  bucket_policies = {
    uploads   = data.aws_iam_policy_document.tls_only["uploads"].json
    processed = data.aws_iam_policy_document.processed.json
  }
}

resource "aws_s3_bucket_public_access_block" "buckets" {
  for_each                = local.buckets
  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "buckets" {
  for_each = local.buckets
  bucket   = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "buckets" {
  for_each = local.buckets
  bucket   = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_versioning" "buckets" {
  for_each = local.buckets
  bucket   = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "buckets" {
  for_each = local.buckets
  bucket   = each.value.id
  # The rules need versioning to be on before they can expire noncurrent versions.
  depends_on = [aws_s3_bucket_versioning.buckets]

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_multipart_days
    }
  }

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    expiration {
      expired_object_delete_marker = true
    }
  }
}

resource "aws_s3_bucket_policy" "buckets" {
  for_each   = local.buckets
  bucket     = each.value.id
  policy     = local.bucket_policies[each.key]
  depends_on = [aws_s3_bucket_public_access_block.buckets]
}

data "aws_iam_policy_document" "tls_only" {
  for_each = local.buckets
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value.arn, "${each.value.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

# The gallery posts each file straight to S3 with a presigned form from POST /uploads: the
# browser needs S3 to answer its CORS preflight. POST only, from the gallery's origin only
# (never "*"); nothing is readable cross-origin.
locals {
  # The packaged directory (make package) overrides both: the API serves the gallery.
  api_origin         = ""
  api_serves_gallery = false
  upload_cors_origins = (
    length(var.upload_cors_origins) > 0 ? var.upload_cors_origins : local.api_serves_gallery ? [local.api_origin] : []
  )
}

resource "aws_s3_bucket_cors_configuration" "uploads" {
  count  = length(var.upload_cors_origins) > 0 || local.api_serves_gallery ? 1 : 0
  bucket = aws_s3_bucket.uploads.id
  cors_rule {
    allowed_methods = ["POST"]
    allowed_origins = local.upload_cors_origins
    allowed_headers = ["*"]
    max_age_seconds = 3000
  }
}

data "aws_iam_policy_document" "processed" {
  source_policy_documents = [data.aws_iam_policy_document.tls_only["processed"].json]

  # The bucket stays private: only this distribution (origin access control) reads renditions.
  statement {
    sid       = "CloudFrontReadsRenditions"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.processed.arn}/${local.output_prefix}*"]
    principals {
      type        = "Service"
      identifiers = ["cloudfront.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "AWS:SourceArn"
      values   = [aws_cloudfront_distribution.processed.arn]
    }
  }
}

# --------------------------------------------------------------- catalog table
resource "aws_dynamodb_table" "catalog" {
  name                        = "${local.prefix}-catalog"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "image_id"
  deletion_protection_enabled = !var.force_destroy

  attribute {
    name = "image_id"
    type = "S"
  }
  attribute {
    name = "listing"
    type = "S"
  }
  attribute {
    name = "status"
    type = "S"
  }
  attribute {
    name = "updated_at"
    type = "S"
  }

  # Upload-form nonces (items `form#<nonce>`, chalicelib/forms.py) carry `expires_at`;
  # image records never do, so the TTL only ever removes used-up nonces.
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  # Every image newest first (listing is always "images"): the read API never scans.
  global_secondary_index {
    name            = "by_updated"
    hash_key        = "listing"
    range_key       = "updated_at"
    projection_type = "ALL"
  }

  # One status (processed, rejected, failed) newest first.
  global_secondary_index {
    name            = "by_status"
    hash_key        = "status"
    range_key       = "updated_at"
    projection_type = "ALL"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }
}
