# CloudFront in front of the processed bucket. The bucket stays private: the distribution
# signs its requests (origin access control) and the bucket policy admits only it.
resource "aws_cloudfront_origin_access_control" "processed" {
  name                              = "${local.prefix}-processed-${local.suffix}"
  description                       = "image-pipeline ${var.stage} renditions"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

locals {
  # AWS-managed policies (fixed IDs, the same in every account).
  cache_policy_caching_optimized    = "658327ea-f89d-4fab-a63d-7e88639e58f6"
  response_headers_security_headers = "67f7725c-6f97-4210-82d7-5512b31e9d03"
  processed_origin_id               = "processed-bucket"
}

resource "aws_cloudfront_distribution" "processed" {
  enabled         = true
  is_ipv6_enabled = true
  http_version    = "http2and3"
  comment         = "image-pipeline ${var.stage} renditions"
  price_class     = var.cloudfront_price_class
  # The domain name is known at once; edge propagation (minutes) need not block the deploy.
  wait_for_deployment = false

  origin {
    origin_id                = local.processed_origin_id
    domain_name              = aws_s3_bucket.processed.bucket_regional_domain_name
    origin_access_control_id = aws_cloudfront_origin_access_control.processed.id
  }

  default_cache_behavior {
    target_origin_id           = local.processed_origin_id
    viewer_protocol_policy     = "https-only"
    allowed_methods            = ["GET", "HEAD", "OPTIONS"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = local.cache_policy_caching_optimized
    response_headers_policy_id = local.response_headers_security_headers
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    cloudfront_default_certificate = true
  }
}
