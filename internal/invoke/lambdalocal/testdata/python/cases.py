import os
import sys
import time


def ok(event, context):
    print("hello from python")
    return {"echo": event["x"], "request_id": context.aws_request_id, "function": context.function_name,
            "remaining_ok": 0 < context.get_remaining_time_in_millis() <= 60000, "memory": context.memory_limit_in_mb,
            "arn": context.invoked_function_arn, "env": os.environ.get("GREETING")}


def handled(event, context):
    return {"tasker_error": {"message": "no stock", "permanent": True, "code": "out_of_stock"}}


class PaymentDeclined(Exception):
    pass


def raises(event, context):
    raise PaymentDeclined("card declined")


def sleeps(event, context):
    time.sleep(30)
    return "late"


def crashes(event, context):
    sys.stderr.write("about to crash\n")
    sys.stderr.flush()
    os._exit(3)


def not_json(event, context):
    return {"when": object()}


def huge(event, context):
    return "x" * (7 << 20)


def returns_none(event, context):
    return None


not_callable = 42


def over_result_limit(event, context):
    return "y" * (300 << 10)  # under Lambda's 6 MiB, over Tasker's result limit


def leaves_child(event, context):
    import subprocess
    subprocess.Popen(["sleep", "30"])  # inherits fd 3; must not hold the answer back
    return "done"


def big(event, context):
    """Large payloads: the shim hands over the context and parent results
    resolved; the large result it returns is uploaded by the shim."""
    c = event["context"]
    n = c["size"]
    if len(c["blob"]) != n or c["blob"].strip("c"):
        return {"tasker_error": {"message": "context arrived with %d bytes" % len(c["blob"]), "permanent": True,
                                 "code": "bad_context"}}
    for name, r in event["results"].items():
        if not isinstance(r, dict) or len(r.get("blob", "")) != n or r.get("tag") != c["tag"]:
            return {"tasker_error": {"message": "result of %s arrived as %.100s" % (name, json_head(r)),
                                     "permanent": True, "code": "bad_result"}}
    return {"blob": "p" * n, "tag": c["tag"], "by": "python", "parents": sorted(event["results"])}


def json_head(v):
    import json
    return json.dumps(v)[:100]
