variable "region" {
  description = "AWS region for every resource (CloudFront is global)."
  type        = string
  default     = "us-east-1"
}

variable "stage" {
  description = "Chalice stage; resource names start with image-pipeline-<stage>-. The prod IAM policy (.chalice/policy-prod.json) matches these names."
  type        = string
  default     = "prod"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,15}$", var.stage))
    error_message = "stage: lowercase letters, digits and '-', at most 16 characters (bucket names are limited to 63)."
  }
}

variable "name_suffix" {
  description = "Suffix of the two bucket names (S3 names are global). Empty: 8 random hex digits chosen once at the first apply and kept in the state."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[a-z0-9]{0,12}$", var.name_suffix))
    error_message = "name_suffix: up to 12 lowercase letters or digits."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the buckets with every object version in them and the catalog table (turns off its deletion protection). Keep false in production."
  type        = bool
  default     = false
}

variable "alert_emails" {
  description = "E-mail addresses subscribed to the alerts topic (each must confirm the subscription e-mail AWS sends)."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Retention of the functions' CloudWatch log groups, in days."
  type        = number
  default     = 7
}

variable "noncurrent_version_days" {
  description = "Days after which overwritten or deleted object versions are expired in both buckets."
  type        = number
  default     = 30
}

variable "abort_multipart_days" {
  description = "Days after which incomplete multipart uploads are aborted (their parts are billed until then)."
  type        = number
  default     = 7
}

variable "async_max_retry_attempts" {
  description = "Retries Lambda makes for a failed asynchronous invocation (S3 and SNS triggers) before sending it to the async-failures queue (0-2)."
  type        = number
  default     = 2
}

variable "async_max_event_age_seconds" {
  description = "Age after which an asynchronous event that still waits for a retry goes to the async-failures queue (60-21600)."
  type        = number
  default     = 3600
}

variable "reprocess_max_receive_count" {
  description = "Deliveries of a reprocess message before it moves to the reprocess dead-letter queue."
  type        = number
  default     = 3
}

variable "rejected_rate_threshold" {
  description = "Alarm when more than this fraction of the images in 15 minutes are rejected (and at least rejected_rate_min_images arrived)."
  type        = number
  default     = 0.25
}

variable "rejected_rate_min_images" {
  description = "Minimum images in 15 minutes before the rejected-input rate alarm may fire (a single bad upload is not an incident)."
  type        = number
  default     = 20
}

variable "duration_alarm_ratio" {
  description = "Alarm when a function's p95 duration exceeds this fraction of its timeout."
  type        = number
  default     = 0.8
}

variable "cloudfront_price_class" {
  description = "CloudFront price class for the renditions CDN (PriceClass_100: North America and Europe edges, the cheapest)."
  type        = string
  default     = "PriceClass_100"
}

variable "api_key_rate_limit" {
  description = "Requests per second (steady) allowed with the write API key; path 1 with WRITE_AUTH=api_key only (api_key.tf.json)."
  type        = number
  default     = 10
}

variable "api_key_burst_limit" {
  description = "Burst of requests allowed with the write API key; path 1 with WRITE_AUTH=api_key only."
  type        = number
  default     = 20
}

variable "upload_cors_origins" {
  description = "Origins whose pages may POST presigned upload forms to the upload bucket. Empty (the default): the API's own origin (https://<id>.execute-api.<region>.amazonaws.com, which serves the gallery) on path 1; on the chalice-deploy path, where infra/ does not know the API, no CORS rule until you set it (to your `chalice url` origin or a custom domain). Never \"*\": the form's signed policy authorizes an upload, CORS decides which pages may read S3's answer."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for o in var.upload_cors_origins : can(regex("^https://[a-z0-9.-]+(:[0-9]+)?$", o))])
    error_message = "upload_cors_origins: https://host[:port] origins only (no \"*\", no path)."
  }
}

variable "functions" {
  description = "The app's Lambda functions: Chalice handler name => trigger (async for S3/SNS, sqs, api) and timeout in seconds. `make package` writes the app's own list into the packaged directory; this default matches app.py and .chalice/config.json for the chalice-deploy path (tests/infra checks they agree)."
  type = map(object({
    trigger = string
    timeout = number
  }))
  default = {
    api_handler       = { trigger = "api", timeout = 30 }
    notify            = { trigger = "async", timeout = 30 }
    process_upload    = { trigger = "async", timeout = 120 }
    remove_renditions = { trigger = "async", timeout = 60 }
    reprocess         = { trigger = "sqs", timeout = 120 }
  }
}

variable "configure_functions" {
  description = "Create what needs the functions to exist (async retries and on-failure destination). The packaged directory sets it to true; on the chalice-deploy path set it to true after `chalice deploy`."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}

variable "cognito_user_pool" {
  description = "Create the Cognito user pool (with the admins group and an app client) that WRITE_AUTH=cognito / READ_AUTH=cognito authorise against. `make package` sets it when the stage uses cognito; on the chalice-deploy path set it yourself."
  type        = bool
  default     = false
}

variable "cognito_admin_group" {
  description = "Name of the Cognito group whose members may delete any image."
  type        = string
  default     = "admins"
}

variable "api_read_rate_limit" {
  description = "Requests per second (steady, whole stage) API Gateway lets through to each read route (every GET: /, /images, /images/{id}, /images/{id}/similar, /health, /health/details); beyond it callers get 429 and the API function is not invoked (infra/api.tf)."
  type        = number
  default     = 10
}

variable "api_read_burst_limit" {
  description = "Burst of requests API Gateway lets through at once to each read route. Keep (read routes x burst) at most the API function's reserved concurrency (50 in prod) less 10: the rest is left to the writes. 6 read routes x 6 = 36."
  type        = number
  default     = 6
}

variable "rest_api_id" {
  description = "Chalice-deploy path only: id of the app's REST API (https://<id>.execute-api...: `chalice url --stage <stage>`), to throttle its read routes. The packaged directory sets it itself."
  type        = string
  default     = ""
}

variable "api_stage_name" {
  description = "Chalice-deploy path only: the API Gateway stage of the REST API (api_gateway_stage in .chalice/config.json)."
  type        = string
  default     = "api"
}
