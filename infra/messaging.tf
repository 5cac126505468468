# ----------------------------------------------------------------- SNS topics
# Image events (processor -> notify and any other subscriber). Encrypted with the
# AWS-managed SNS key: Lambda publishers and subscribers need no key policy.
resource "aws_sns_topic" "events" {
  name              = "${local.prefix}-events"
  kms_master_key_id = "alias/aws/sns"
}

# Human-readable alerts (notify's messages and the CloudWatch alarms) to people.
# Not encrypted: CloudWatch alarms cannot publish to a topic under the AWS-managed SNS key.
resource "aws_sns_topic" "alerts" {
  name = "${local.prefix}-alerts"
}

resource "aws_sns_topic_subscription" "alert_emails" {
  for_each  = toset(var.alert_emails)
  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = each.value
}

# ---------------------------------------------------------------- SQS queues
# Asynchronous invocations (S3 and SNS triggers) that failed every retry or grew too old
# land here with the error and the original event: nothing is dropped silently.
resource "aws_sqs_queue" "async_failures" {
  name                      = "${local.prefix}-async-failures"
  message_retention_seconds = 1209600 # 14 days, the maximum
  sqs_managed_sse_enabled   = true
}

# Reprocessing fans out through this queue (handler `reprocess`, @app.on_sqs_message).
resource "aws_sqs_queue" "reprocess" {
  name                    = "${local.prefix}-reprocess"
  sqs_managed_sse_enabled = true
  # Lambda requires at least the function timeout; AWS advises six times it.
  visibility_timeout_seconds = 6 * try(var.functions["reprocess"].timeout, 120)
  message_retention_seconds  = 345600 # 4 days
}

# A message that fails reprocess_max_receive_count times moves to the dead-letter queue.
resource "aws_sqs_queue_redrive_policy" "reprocess" {
  queue_url = aws_sqs_queue.reprocess.id
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.reprocess_dlq.arn
    maxReceiveCount     = var.reprocess_max_receive_count
  })
}

resource "aws_sqs_queue" "reprocess_dlq" {
  name                      = "${local.prefix}-reprocess-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue_redrive_allow_policy" "reprocess_dlq" {
  queue_url = aws_sqs_queue.reprocess_dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.reprocess.arn]
  })
}

# ------------------------------------------------- async invocation settings
locals {
  # Chalice names functions <app>-<stage>-<handler>; the REST API's is <app>-<stage>.
  function_names = {
    for handler, _ in var.functions :
    handler => handler == "api_handler" ? local.prefix : "${local.prefix}-${handler}"
  }
  async_functions = { for handler, f in var.functions : handler => local.function_names[handler] if f.trigger == "async" }
}

# Chalice's config cannot express retries or destinations. The functions' role may send
# to the queue (policy-prod.json, statement AsyncFailuresToQueue).
resource "aws_lambda_function_event_invoke_config" "async" {
  for_each                     = var.configure_functions ? local.async_functions : {}
  function_name                = each.value
  maximum_retry_attempts       = var.async_max_retry_attempts
  maximum_event_age_in_seconds = var.async_max_event_age_seconds

  destination_config {
    on_failure {
      destination = aws_sqs_queue.async_failures.arn
    }
  }
}
