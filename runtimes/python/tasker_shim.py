# Tasker's local runtime shim for Python Lambda handlers (docs/handlers.md,
# "Python"). `tasker dev` starts one process per invocation:
#
#   python3 -c <this file>   with TASKER_SHIM_* in the environment
#
# It reads the invocation event (JSON) from stdin, calls
# handler(event, context) the way the Lambda Python runtime does, and writes
# one JSON line to file descriptor 3: {"result": …} or {"error": {"errorMessage",
# "errorType", "stackTrace"}} with Lambda's error types. stdout and stderr
# stay the handler's own (tasker dev logs them).
import importlib
import json
import os
import sys
import time
import traceback


class LambdaContext:
    """The context object of the Lambda Python runtime."""

    def __init__(self, env, deadline_ms):
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = env.get("TASKER_SHIM_FUNCTION_ARN", "")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.aws_request_id = env.get("TASKER_SHIM_REQUEST_ID", "")
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline_ms - time.time() * 1000))


def prepare_event(event):
    """Prepares the event before the handler sees it.

    The one place where the shim changes the event: payload references
    (large values kept out of line) are resolved here.
    """
    return event


def error(error_type, message, tb=None):
    body = {"errorMessage": message, "errorType": error_type}
    if tb is not None:
        body["stackTrace"] = [line.rstrip("\n") for line in traceback.format_tb(tb)]
    return {"error": body}


def run(env, stdin):
    handler = env.get("TASKER_SHIM_HANDLER", "")
    module_name, _, fn_name = handler.rpartition(".")
    if not module_name or not fn_name:
        return error("Runtime.MalformedHandlerName", "Bad handler '%s': want module.function" % handler)
    try:
        event = prepare_event(json.load(stdin))
    except Exception as e:  # the engine sends JSON; this is a shim bug
        return error("Runtime.UnmarshalError", "Unable to unmarshal input: %s" % e)
    root = env.get("LAMBDA_TASK_ROOT", ".")
    sys.path.insert(0, root)
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except Exception as e:
        return error("Runtime.ImportModuleError", "Unable to import module '%s': %s" % (module_name, e))
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        return error("Runtime.HandlerNotFound", "Handler '%s' missing on module '%s'" % (fn_name, module_name))
    context = LambdaContext(env, float(env.get("TASKER_SHIM_DEADLINE_MS", "0")))
    try:
        result = fn(event, context)
    except Exception as e:
        _, _, tb = sys.exc_info()
        return error(type(e).__name__, str(e), tb.tb_next if tb else None)
    return {"result": result}


def main():
    out = os.fdopen(3, "w", encoding="utf-8")
    body = run(os.environ, sys.stdin)
    try:
        line = json.dumps(body, allow_nan=False)
    except (TypeError, ValueError) as e:
        line = json.dumps(error("Runtime.MarshalError", "Unable to marshal response: %s" % e))
    out.write(line)
    out.write("\n")
    out.flush()


main()
