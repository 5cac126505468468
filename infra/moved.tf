# Addresses renamed when storage.tf and monitoring.tf were de-duplicated (for_each): with
# these, a state applied before it plans no change (nothing is destroyed and recreated).
# Safe to delete once every stage has been applied with them.

moved {
  from = aws_s3_bucket_public_access_block.uploads
  to   = aws_s3_bucket_public_access_block.buckets["uploads"]
}

moved {
  from = aws_s3_bucket_public_access_block.processed
  to   = aws_s3_bucket_public_access_block.buckets["processed"]
}

moved {
  from = aws_s3_bucket_ownership_controls.uploads
  to   = aws_s3_bucket_ownership_controls.buckets["uploads"]
}

moved {
  from = aws_s3_bucket_ownership_controls.processed
  to   = aws_s3_bucket_ownership_controls.buckets["processed"]
}

moved {
  from = aws_s3_bucket_server_side_encryption_configuration.uploads
  to   = aws_s3_bucket_server_side_encryption_configuration.buckets["uploads"]
}

moved {
  from = aws_s3_bucket_server_side_encryption_configuration.processed
  to   = aws_s3_bucket_server_side_encryption_configuration.buckets["processed"]
}

moved {
  from = aws_s3_bucket_versioning.uploads
  to   = aws_s3_bucket_versioning.buckets["uploads"]
}

moved {
  from = aws_s3_bucket_versioning.processed
  to   = aws_s3_bucket_versioning.buckets["processed"]
}

moved {
  from = aws_s3_bucket_lifecycle_configuration.uploads
  to   = aws_s3_bucket_lifecycle_configuration.buckets["uploads"]
}

moved {
  from = aws_s3_bucket_lifecycle_configuration.processed
  to   = aws_s3_bucket_lifecycle_configuration.buckets["processed"]
}

moved {
  from = aws_s3_bucket_policy.uploads
  to   = aws_s3_bucket_policy.buckets["uploads"]
}

moved {
  from = aws_s3_bucket_policy.processed
  to   = aws_s3_bucket_policy.buckets["processed"]
}

moved {
  from = aws_cloudwatch_metric_alarm.errors["api_handler"]
  to   = aws_cloudwatch_metric_alarm.single_metric["api_handler-errors"]
}

moved {
  from = aws_cloudwatch_metric_alarm.errors["notify"]
  to   = aws_cloudwatch_metric_alarm.single_metric["notify-errors"]
}

moved {
  from = aws_cloudwatch_metric_alarm.errors["process_upload"]
  to   = aws_cloudwatch_metric_alarm.single_metric["process_upload-errors"]
}

moved {
  from = aws_cloudwatch_metric_alarm.errors["remove_renditions"]
  to   = aws_cloudwatch_metric_alarm.single_metric["remove_renditions-errors"]
}

moved {
  from = aws_cloudwatch_metric_alarm.errors["reprocess"]
  to   = aws_cloudwatch_metric_alarm.single_metric["reprocess-errors"]
}

moved {
  from = aws_cloudwatch_metric_alarm.throttles["api_handler"]
  to   = aws_cloudwatch_metric_alarm.single_metric["api_handler-throttles"]
}

moved {
  from = aws_cloudwatch_metric_alarm.throttles["notify"]
  to   = aws_cloudwatch_metric_alarm.single_metric["notify-throttles"]
}

moved {
  from = aws_cloudwatch_metric_alarm.throttles["process_upload"]
  to   = aws_cloudwatch_metric_alarm.single_metric["process_upload-throttles"]
}

moved {
  from = aws_cloudwatch_metric_alarm.throttles["remove_renditions"]
  to   = aws_cloudwatch_metric_alarm.single_metric["remove_renditions-throttles"]
}

moved {
  from = aws_cloudwatch_metric_alarm.throttles["reprocess"]
  to   = aws_cloudwatch_metric_alarm.single_metric["reprocess-throttles"]
}

moved {
  from = aws_cloudwatch_metric_alarm.duration_p95["api_handler"]
  to   = aws_cloudwatch_metric_alarm.single_metric["api_handler-duration-p95"]
}

moved {
  from = aws_cloudwatch_metric_alarm.duration_p95["notify"]
  to   = aws_cloudwatch_metric_alarm.single_metric["notify-duration-p95"]
}

moved {
  from = aws_cloudwatch_metric_alarm.duration_p95["process_upload"]
  to   = aws_cloudwatch_metric_alarm.single_metric["process_upload-duration-p95"]
}

moved {
  from = aws_cloudwatch_metric_alarm.duration_p95["remove_renditions"]
  to   = aws_cloudwatch_metric_alarm.single_metric["remove_renditions-duration-p95"]
}

moved {
  from = aws_cloudwatch_metric_alarm.duration_p95["reprocess"]
  to   = aws_cloudwatch_metric_alarm.single_metric["reprocess-duration-p95"]
}

moved {
  from = aws_cloudwatch_metric_alarm.dead_letters["async_failures"]
  to   = aws_cloudwatch_metric_alarm.single_metric["async_failures-not-empty"]
}

moved {
  from = aws_cloudwatch_metric_alarm.dead_letters["reprocess_dlq"]
  to   = aws_cloudwatch_metric_alarm.single_metric["reprocess_dlq-not-empty"]
}

moved {
  from = aws_cloudwatch_metric_alarm.publish_failures
  to   = aws_cloudwatch_metric_alarm.single_metric["publish-failures"]
}

moved {
  from = aws_s3_bucket_cors_configuration.uploads
  to   = aws_s3_bucket_cors_configuration.uploads[0]
}
