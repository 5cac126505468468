"""The local stack: the whole pipeline on one machine, no AWS account.

`python -m devstack run` (what `make run` calls) starts moto's server as the AWS
emulator, creates the dev stage's resources, wires the app's own event sources to SQS
queues and relays them to the handlers the way Lambda invokes them, serves the HTTP routes
with Chalice's local server, and keeps ./inbox and ./outbox in step with the buckets.
It lives outside chalicelib/ so that none of it is deployed: the handlers never import it, and
`make package` builds a zip without it (tests/infra/test_package.py checks the file list).
"""
