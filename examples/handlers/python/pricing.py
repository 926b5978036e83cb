"""Prices an order: a Python Lambda handler of the examples/order_pricing workflow.

Deployed as its own function (template.yaml, PricingExampleFunction); run
locally by `tasker dev` through lambdas.local.yaml (docs/handlers.md, "Python").
"""
from decimal import Decimal, ROUND_HALF_UP

TAX_RATE = Decimal("0.2")


def handler(event, context):
    items = event["context"]["items"]
    if not items:
        # A handled failure: permanent, so Tasker does not retry it.
        return {"tasker_error": {"message": "the order has no items", "permanent": True, "code": "empty_order"}}
    subtotal = sum(Decimal(str(i["price"])) * i["quantity"] for i in items)
    tax = (subtotal * TAX_RATE).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return {
        "subtotal": str(subtotal),
        "tax": str(tax),
        "total": str(subtotal + tax),
        "currency": event["config"].get("currency", "EUR"),
        "priced_by": context.function_name,
        "request_id": context.aws_request_id,
        "had_time_left": context.get_remaining_time_in_millis() > 0,
    }
