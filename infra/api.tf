# API Gateway throttles each read route of the app's REST API, i.e. every GET: /, /images,
# /images/{id}, /images/{id}/similar, /health, and /health/details (an operator's route behind
# WRITE_AUTH, throttled too: a leaked key or WRITE_AUTH=none must not drain the function, and
# its AWS probes hold an execution longest). Beyond the rate callers get 429 at the edge and the API function is not invoked,
# so a flood of anonymous reads cannot take its reserved concurrency away from POST /uploads
# and DELETE. The packaged directory (make package) points these locals at Chalice's API and
# stage; on the chalice-deploy path set rest_api_id (the id in `chalice url`) after
# `chalice deploy`.
locals {
  api_throttled  = var.rest_api_id != ""
  api_id         = var.rest_api_id
  api_stage_name = var.api_stage_name
  # As API Gateway names method settings: every "/" of the resource path written "~1". The
  # packaged directory derives this list from the app's routes (deploy/api_gateway.py); this
  # copy for the chalice-deploy path is checked against them (tests/infra/test_package.py).
  api_read_method_paths = [
    "~1/GET", "~1health/GET", "~1health~1details/GET", "~1images/GET", "~1images~1{image_id}/GET",
    "~1images~1{image_id}~1similar/GET",
  ]
}

resource "aws_api_gateway_method_settings" "reads" {
  for_each    = local.api_throttled ? toset(local.api_read_method_paths) : toset([])
  rest_api_id = local.api_id
  stage_name  = local.api_stage_name
  method_path = each.value

  # No caching: the answers depend on the caller's credentials.
  settings {
    throttling_rate_limit  = var.api_read_rate_limit
    throttling_burst_limit = var.api_read_burst_limit
  }
}
