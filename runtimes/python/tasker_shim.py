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
#
# Large payloads (docs/handlers.md, "Large payloads"), as the Go SDK does
# them: references in the event's context and results are fetched and
# checked before the handler runs, and a result over
# tasker.result_upload.inline_limit is uploaded and returned as a
# reference. Their failures are handled failures ({"tasker_error": …} with
# a code), never Lambda errors, so the engine sees code and permanence.
import hashlib
import importlib
import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.request


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


class PayloadError(Exception):
    """A large-payload failure: a handled failure with a code."""

    def __init__(self, message, code, permanent):
        super().__init__(message)
        self.code = code
        self.permanent = permanent

    def envelope(self):
        return {"tasker_error": {"message": str(self), "permanent": self.permanent,
                                 "retry_after_seconds": 0, "code": self.code}}


def invalid(message):
    return PayloadError(message, "payload_ref_invalid", True)


def blob_timeout(deadline_ms):
    """Seconds an HTTP exchange may take: until the step's deadline."""
    if deadline_ms <= 0:
        return 60.0
    return max(0.1, deadline_ms / 1000.0 - time.time())


def as_ref(value, what):
    """The reference value stands for, or None when value is data.

    Like contract.AsRef: an object whose only member is "tasker_ref";
    a malformed one is an error, never data.
    """
    if not isinstance(value, dict) or len(value) != 1 or "tasker_ref" not in value:
        return None
    ref = value["tasker_ref"]
    if not isinstance(ref, dict):
        raise invalid("%s: malformed tasker_ref: want an object, got %.200s" % (what, json.dumps(ref)))
    uri, size, digest = ref.get("uri"), ref.get("size"), ref.get("sha256")
    if (not isinstance(uri, str) or not uri or isinstance(size, bool) or not isinstance(size, int)
            or size < 0 or not isinstance(digest, str) or len(digest) != 64):
        raise invalid("%s: malformed tasker_ref: want uri, size >= 0 and a 64-digit hex sha256, got %.200s"
                      % (what, json.dumps(ref)))
    url = ref.get("url")
    if not isinstance(url, str) or not url:
        raise invalid("%s: reference %s has no url" % (what, uri))
    return ref


def resolve_value(value, what, deadline_ms):
    ref = as_ref(value, what)
    if ref is None:
        return value
    uri, size = ref["uri"], ref["size"]
    unavailable = "payload_unavailable"
    try:
        req = urllib.request.Request(ref["url"], method="GET")
    except ValueError as e:
        raise invalid("%s: reference url: %s" % (what, e))
    try:
        with urllib.request.urlopen(req, timeout=blob_timeout(deadline_ms)) as resp:
            if resp.status != 200:
                raise PayloadError("%s: fetch %s: HTTP %d" % (what, uri, resp.status), unavailable, False)
            # One byte past the announced size shows a longer body
            # without reading all of it.
            body = resp.read(size + 1)
    except urllib.error.HTTPError as e:
        raise PayloadError("%s: fetch %s: HTTP %d" % (what, uri, e.code), unavailable, False)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise PayloadError("%s: fetch %s: %s" % (what, uri, e), unavailable, False)
    if len(body) != size:
        raise invalid("%s: %s is not %d bytes as its reference says" % (what, uri, size))
    if hashlib.sha256(body).hexdigest() != ref["sha256"]:
        raise invalid("%s: %s does not match the sha256 of its reference" % (what, uri))
    try:
        return json.loads(body)
    except ValueError as e:
        raise invalid("%s: %s is not JSON: %s" % (what, uri, e))


def prepare_event(event, deadline_ms):
    """Prepares the event before the handler sees it.

    The one place where the shim changes the event: payload references
    (large values kept out of line) are resolved here. Raises PayloadError.
    """
    if not isinstance(event, dict):
        return event
    if "context" in event:
        event["context"] = resolve_value(event["context"], "context", deadline_ms)
    results = event.get("results")
    if isinstance(results, dict):
        for name in list(results):
            results[name] = resolve_value(results[name], "result of " + name, deadline_ms)
    return event


def result_upload(event):
    tasker = event.get("tasker") if isinstance(event, dict) else None
    up = tasker.get("result_upload") if isinstance(tasker, dict) else None
    return up if isinstance(up, dict) else None


def offload_result(up, data, deadline_ms):
    """The JSON text to return for a result encoded as data: data itself
    within the inline limit, else the reference to its upload."""
    limit = up.get("inline_limit", 0)
    if not isinstance(limit, int) or len(data) <= limit:
        return None
    max_bytes = up.get("max_bytes", 0)
    if isinstance(max_bytes, int) and 0 < max_bytes < len(data):
        raise PayloadError("result is %d bytes, over the %d-byte limit on step results (TASKER_PAYLOAD_MAX_BYTES)"
                           % (len(data), max_bytes), "result_too_large", True)
    try:
        req = urllib.request.Request(up.get("url") or "", data=data, method="PUT",
                                     headers={"Content-Type": "application/json"})
    except ValueError as e:
        raise invalid("result upload url: %s" % e)
    try:
        with urllib.request.urlopen(req, timeout=blob_timeout(deadline_ms)) as resp:
            resp.read(4 << 10)
            if resp.status // 100 != 2:
                raise PayloadError("upload result: HTTP %d" % resp.status, "result_upload_failed", False)
    except urllib.error.HTTPError as e:
        raise PayloadError("upload result: HTTP %d" % e.code, "result_upload_failed", False)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise PayloadError("upload result: %s" % e, "result_upload_failed", False)
    return json.dumps({"tasker_ref": {"uri": up.get("uri", ""), "size": len(data),
                                      "sha256": hashlib.sha256(data).hexdigest()}})


def encode_result(value):
    """The result's JSON as text and UTF-8 bytes (compact, so the size
    compared with the limits is the size the engine sees)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text, text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: keep it escaped
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
        return text, text.encode("utf-8")


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
        event = json.load(stdin)
    except Exception as e:  # the engine sends JSON; this is a shim bug
        return error("Runtime.UnmarshalError", "Unable to unmarshal input: %s" % e)
    deadline_ms = float(env.get("TASKER_SHIM_DEADLINE_MS", "0"))
    upload = result_upload(event)
    try:
        event = prepare_event(event, deadline_ms)
    except PayloadError as e:
        return {"result": e.envelope()}
    root = env.get("LAMBDA_TASK_ROOT", ".")
    sys.path.insert(0, root)
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except Exception as e:
        return error("Runtime.ImportModuleError", "Unable to import module '%s': %s" % (module_name, e))
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        return error("Runtime.HandlerNotFound", "Handler '%s' missing on module '%s'" % (fn_name, module_name))
    context = LambdaContext(env, deadline_ms)
    try:
        result = fn(event, context)
    except Exception as e:
        _, _, tb = sys.exc_info()
        return error(type(e).__name__, str(e), tb.tb_next if tb else None)
    if upload is None:
        return {"result": result}
    try:
        text, data = encode_result(result)
    except (TypeError, ValueError):
        return {"result": result}  # main reports the Runtime.MarshalError
    try:
        ref = offload_result(upload, data, deadline_ms)
    except PayloadError as e:
        return {"result": e.envelope()}
    # The text already measured goes out as is.
    return {"result_json": ref if ref is not None else text}


def main():
    out = os.fdopen(3, "w", encoding="utf-8")
    body = run(os.environ, sys.stdin)
    try:
        if "result_json" in body:
            line = '{"result":' + body["result_json"] + "}"
        else:
            line = json.dumps(body, allow_nan=False)
    except (TypeError, ValueError) as e:
        line = json.dumps(error("Runtime.MarshalError", "Unable to marshal response: %s" % e))
    out.write(line)
    out.write("\n")
    out.flush()


main()
