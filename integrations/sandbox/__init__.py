"""A local stand-in for external providers (a data API, payment APIs), run as a process.

Provider endpoints (counted in stats; faults, latency and outages apply):

    GET  /v1/rates                                      data API
    POST /v1/charges                                    the simple one-call payment API
    POST /v1/payment_intents                            Stripe-like (stripe_api.py)
    POST /v1/payment_intents/{id}/confirm|capture|cancel
    GET  /v1/payment_intents/{id}, /v1/payment_intents/search?query=metadata['k']:'v'
    POST /v1/refunds
    POST /adyen/v71/payments                            Adyen-like (adyen_api.py)
    POST /adyen/v71/payments/{pspReference}/captures|refunds|cancels
    GET  /adyen/v71/payments/{pspReference}             sandbox only: Adyen has no such GET

Admin endpoints (loopback only): GET /_sandbox/stats, POST /_sandbox/reset, POST
/_sandbox/faults (script, latency_ms, outage, key_retention_s), GET /_sandbox/payments (the
payment book), POST /_sandbox/payments (a payment made behind Conveyor's back).

Faults, per request (`X-Sandbox-Fault: 503;retry_after=2`, `delay=5000`, `reset-before`,
`reset-after`, `drip=2000`, `odd-body`) or scripted for the next requests (`{"script": [{"status":
429}, {"drip_ms": 2000}, {"odd_body": true}]}`): see `faults.Fault`. `drip` sends the answer's
body one byte every N ms; `odd-body` does the work but answers a 2xx with `{"id": 5, "object":
[]}`, a shape no adapter reads.
"""
