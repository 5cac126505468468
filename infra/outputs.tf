output "upload_bucket" {
  description = "Upload here, under uploads/ (UPLOAD_BUCKET)."
  value       = aws_s3_bucket.uploads.bucket
}

output "processed_bucket" {
  description = "Renditions (PROCESSED_BUCKET)."
  value       = aws_s3_bucket.processed.bucket
}

output "catalog_table" {
  description = "DynamoDB catalog (CATALOG_TABLE)."
  value       = aws_dynamodb_table.catalog.name
}

output "events_topic_arn" {
  description = "SNS topic of image events (its name is EVENTS_TOPIC)."
  value       = aws_sns_topic.events.arn
}

output "alerts_topic_arn" {
  description = "SNS topic people subscribe to (ALERTS_TOPIC_ARN); alarms publish here too."
  value       = aws_sns_topic.alerts.arn
}

output "reprocess_queue_url" {
  description = "SQS queue the reprocess fan-out sends to (its name is REPROCESS_QUEUE)."
  value       = aws_sqs_queue.reprocess.url
}

output "async_failures_queue_url" {
  description = "Failed asynchronous invocations, with their error and event."
  value       = aws_sqs_queue.async_failures.url
}

output "cloudfront_domain" {
  description = "CDN domain serving renditions: https://<domain>/renditions/... (CDN_DOMAIN)."
  value       = aws_cloudfront_distribution.processed.domain_name
}

output "api_url" {
  description = "REST API URL. Filled in the packaged directory when the app has routes; on the chalice-deploy path `chalice url --stage <stage>` prints it."
  value       = ""
}

output "dashboard_url" {
  description = "CloudWatch dashboard."
  value       = "https://${var.region}.console.aws.amazon.com/cloudwatch/home?region=${var.region}#dashboards:name=${aws_cloudwatch_dashboard.pipeline.dashboard_name}"
}

output "chalice_environment" {
  description = "environment_variables for the stage in .chalice/config.json (chalice-deploy path; `make chalice-config` merges them)."
  value = {
    UPLOAD_BUCKET    = aws_s3_bucket.uploads.bucket
    PROCESSED_BUCKET = aws_s3_bucket.processed.bucket
    CATALOG_TABLE    = aws_dynamodb_table.catalog.name
    EVENTS_TOPIC     = aws_sns_topic.events.name
    ALERTS_TOPIC_ARN = aws_sns_topic.alerts.arn
    REPROCESS_QUEUE  = aws_sqs_queue.reprocess.name
    CDN_DOMAIN       = aws_cloudfront_distribution.processed.domain_name
    # CloudFront invalidation on DELETE, and the IAM policies' one distribution.
    CDN_DISTRIBUTION_ID = aws_cloudfront_distribution.processed.id
    # WRITE_AUTH=cognito / READ_AUTH=cognito ("" without the pool).
    COGNITO_USER_POOL_ARN = try(aws_cognito_user_pool.users[0].arn, "")
    # Not settings: `make chalice-config` pins the rendered IAM policies to them.
    AWS_REGION     = var.region
    AWS_ACCOUNT_ID = data.aws_caller_identity.current.account_id
  }
}

output "cloudfront_distribution_id" {
  description = "CDN distribution renditions are invalidated on (CDN_DISTRIBUTION_ID)."
  value       = aws_cloudfront_distribution.processed.id
}

output "cognito_user_pool_arn" {
  description = "Cognito user pool for WRITE_AUTH/READ_AUTH=cognito (COGNITO_USER_POOL_ARN); empty unless cognito_user_pool is true."
  value       = try(aws_cognito_user_pool.users[0].arn, "")
}

output "cognito_app_client_id" {
  description = "App client the gallery or a CLI signs in with (SRP); empty unless cognito_user_pool is true."
  value       = try(aws_cognito_user_pool_client.app[0].id, "")
}
