"""The local stack: the whole pipeline on one machine, no AWS account.

`python -m devstack run` (what `make run` calls) starts moto's server as the AWS
emulator, creates the dev stage's resources, wires the app's own event sources to SQS
queues and relays them to the handlers the way Lambda invokes them, serves the HTTP routes
with Chalice's local server, and keeps ./inbox and ./outbox in step with the buckets.
Nothing here is imported by the Lambda handlers.
"""
