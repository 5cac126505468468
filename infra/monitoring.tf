locals {
  metrics_namespace = "ImagePipeline/${var.stage}"
  alarm_actions     = [aws_sns_topic.alerts.arn]

  # Metric filters on the app's JSON outcome lines (chalicelib/observe.py; every
  # image.processed line carries duration_ms and RenditionsWritten, every malformed-event line
  # error_code malformed_event; tests/infra checks them against lines the service really prints). The EMF metrics in namespace ImagePipeline
  # carry no stage; these are per stage and feed the alarms.
  log_metrics = {
    Processed         = { pattern = "{ $.event = \"image.processed\" }", value = "1", unit = "Count" }
    Rejected          = { pattern = "{ $.event = \"image.rejected\" }", value = "1", unit = "Count" }
    Failed            = { pattern = "{ $.event = \"image.failed\" }", value = "1", unit = "Count" }
    ProcessingTime    = { pattern = "{ $.event = \"image.processed\" }", value = "$.duration_ms", unit = "Milliseconds" }
    RenditionsWritten = { pattern = "{ $.event = \"image.processed\" }", value = "$.RenditionsWritten", unit = "Count" }
    PublishFailures   = { pattern = "{ $.event = \"publish.failed\" }", value = "1", unit = "Count" }
    EventsMalformed   = { pattern = "{ $.error_code = \"malformed_event\" }", value = "1", unit = "Count" }
  }
  filters = merge([
    for handler, name in local.function_names : {
      for metric, m in local.log_metrics : "${handler}.${metric}" => merge(m, { handler = handler, metric = metric })
    }
  ]...)

  dead_letter_queues = {
    async_failures = aws_sqs_queue.async_failures.name
    reprocess_dlq  = aws_sqs_queue.reprocess_dlq.name
  }
}

# Created before the functions (the packaged directory makes them depend on these) so
# Lambda never creates one without retention.
resource "aws_cloudwatch_log_group" "functions" {
  for_each          = local.function_names
  name              = "/aws/lambda/${each.value}"
  retention_in_days = var.log_retention_days
}

resource "aws_cloudwatch_log_metric_filter" "outcomes" {
  for_each       = local.filters
  name           = "${local.prefix}-${each.value.handler}-${each.value.metric}"
  log_group_name = aws_cloudwatch_log_group.functions[each.value.handler].name
  pattern        = each.value.pattern

  metric_transformation {
    name      = each.value.metric
    namespace = local.metrics_namespace
    value     = each.value.value
    unit      = each.value.unit
  }
}

# ------------------------------------------------------------------- alarms
locals {
  # The alarms on a single metric, by key: each fires when the metric is above its threshold
  # in a 5-minute period (duration: in 2 periods out of 2), a missing datapoint is no alarm.
  alarm_defaults = {
    dimensions          = null
    statistic           = "Sum"
    extended_statistic  = null
    evaluation_periods  = 1
    datapoints_to_alarm = null
    threshold           = 0
  }
  alarm_specs = merge(
    merge([
      for handler, name in local.function_names : {
        "${handler}-errors" = {
          alarm_name  = "${name}-errors"
          description = "${name} raised an error (failed images are retried, then go to the async-failures queue)."
          namespace   = "AWS/Lambda"
          metric_name = "Errors"
          dimensions  = { FunctionName = name }
        }
        "${handler}-throttles" = {
          alarm_name  = "${name}-throttles"
          description = "${name} was throttled (reserved or account concurrency reached)."
          namespace   = "AWS/Lambda"
          metric_name = "Throttles"
          dimensions  = { FunctionName = name }
        }
        "${handler}-duration-p95" = {
          alarm_name          = "${name}-duration-p95"
          description         = "p95 duration of ${name} is above ${var.duration_alarm_ratio * 100}% of its ${var.functions[handler].timeout} s timeout."
          namespace           = "AWS/Lambda"
          metric_name         = "Duration"
          dimensions          = { FunctionName = name }
          statistic           = null
          extended_statistic  = "p95"
          evaluation_periods  = 2
          datapoints_to_alarm = 2
          threshold           = var.functions[handler].timeout * 1000 * var.duration_alarm_ratio
        }
      }
    ]...),
    {
      for key, queue in local.dead_letter_queues : "${key}-not-empty" => {
        alarm_name  = "${queue}-not-empty"
        description = "Messages wait in ${queue}: events that failed every retry. Inspect, fix, then redrive."
        namespace   = "AWS/SQS"
        metric_name = "ApproximateNumberOfMessagesVisible"
        dimensions  = { QueueName = queue }
        statistic   = "Maximum"
      }
    },
    {
      # The catalog item stands but subscribers (notify, anyone else on the events topic)
      # missed the event: observe's publish.failed line.
      publish-failures = {
        alarm_name  = "${local.prefix}-publish-failures"
        description = "Events could not be published to ${aws_sns_topic.events.name}: their catalog items exist, subscribers missed them (the publish.failed log lines name the images)."
        namespace   = local.metrics_namespace
        metric_name = "PublishFailures"
      }
      # An event dropped because no retry can make it processable (not an S3/SNS/SQS record,
      # another bucket's object, a reprocess message we did not write): a misconfigured
      # trigger or an integration sending garbage. Logged as error_code malformed_event.
      malformed-events = {
        alarm_name  = "${local.prefix}-malformed-events"
        description = "Events were dropped as malformed (not S3/SNS/SQS records, another bucket's objects, or unreadable reprocess messages): check the triggers and whoever sends them. The log lines with error_code malformed_event give the reason and the record."
        namespace   = local.metrics_namespace
        metric_name = "EventsMalformed"
      }
    },
  )
}

resource "aws_cloudwatch_metric_alarm" "single_metric" {
  for_each            = { for key, spec in local.alarm_specs : key => merge(local.alarm_defaults, spec) }
  alarm_name          = each.value.alarm_name
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric_name
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  extended_statistic  = each.value.extended_statistic
  period              = 300
  evaluation_periods  = each.value.evaluation_periods
  datapoints_to_alarm = each.value.datapoints_to_alarm
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# Metric math: the share of rejected uploads.
resource "aws_cloudwatch_metric_alarm" "rejected_rate" {
  alarm_name          = "${local.prefix}-rejected-rate"
  alarm_description   = "More than ${var.rejected_rate_threshold * 100}% of uploads were rejected in 15 minutes (at least ${var.rejected_rate_min_images} images)."
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.rejected_rate_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "rate"
    expression  = "IF(total >= ${var.rejected_rate_min_images}, rejected_or_0 / total, 0)"
    label       = "Rejected fraction"
    return_data = true
  }

  # A period with rejections only has no Processed datapoint at all: FILL keeps the sum
  # (else metric math drops that period and a 100% rejection rate would never alarm).
  metric_query {
    id          = "rejected_or_0"
    expression  = "FILL(rejected, 0)"
    return_data = false
  }

  metric_query {
    id          = "total"
    expression  = "FILL(processed, 0) + FILL(rejected, 0)"
    return_data = false
  }

  metric_query {
    id = "rejected"
    metric {
      namespace   = local.metrics_namespace
      metric_name = "Rejected"
      period      = 900
      stat        = "Sum"
    }
  }

  metric_query {
    id = "processed"
    metric {
      namespace   = local.metrics_namespace
      metric_name = "Processed"
      period      = 900
      stat        = "Sum"
    }
  }
}

# ---------------------------------------------------------------- dashboard
resource "aws_cloudwatch_dashboard" "pipeline" {
  dashboard_name = local.prefix
  dashboard_body = jsonencode({
    widgets = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title   = "Invocations", region = var.region, stat = "Sum", period = 300, view = "timeSeries"
          metrics = [for name in values(local.function_names) : ["AWS/Lambda", "Invocations", "FunctionName", name]]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title = "Errors and throttles", region = var.region, stat = "Sum", period = 300, view = "timeSeries"
          metrics = concat(
            [for name in values(local.function_names) : ["AWS/Lambda", "Errors", "FunctionName", name]],
            [for name in values(local.function_names) : ["AWS/Lambda", "Throttles", "FunctionName", name]],
          )
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title = "Duration percentiles (ms)", region = var.region, period = 300, view = "timeSeries"
          metrics = flatten([
            for name in values(local.function_names) : [
              for p in ["p50", "p95", "p99"] : ["AWS/Lambda", "Duration", "FunctionName", name, { stat = p, label = "${name} ${p}" }]
            ]
          ])
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title   = "Images: processed, rejected, failed; malformed events", region = var.region, stat = "Sum", period = 300, view = "timeSeries"
          metrics = [for m in ["Processed", "Rejected", "Failed", "PublishFailures", "EventsMalformed"] : [local.metrics_namespace, m]]
        }
      },
      {
        type = "metric", x = 0, y = 12, width = 12, height = 6
        properties = {
          title   = "Renditions written", region = var.region, stat = "Sum", period = 300, view = "timeSeries"
          metrics = [[local.metrics_namespace, "RenditionsWritten"]]
        }
      },
      {
        type = "metric", x = 12, y = 12, width = 12, height = 6
        properties = {
          title   = "Dead-letter queues (messages waiting)", region = var.region, stat = "Maximum", period = 300, view = "timeSeries"
          metrics = [for q in values(local.dead_letter_queues) : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q]]
        }
      },
    ]
  })
}
