// Tasker's local runtime shim for Node.js Lambda handlers (docs/handlers.md,
// "Node.js"). `tasker dev` starts one process per invocation:
//
//   node -e <this file>   with TASKER_SHIM_* in the environment
//
// It reads the invocation event (JSON) from stdin, calls
// handler(event, context[, callback]) the way the Lambda Node.js runtime
// does (async handlers, promises and callback style), and writes one JSON
// line to file descriptor 3: {"result": …} or {"error": {"errorMessage",
// "errorType", "stackTrace"}} with Lambda's error types. stdout and stderr
// stay the handler's own (tasker dev logs them).
//
// Large payloads (docs/handlers.md, "Large payloads"), as the Go SDK does
// them: references in the event's context and results are fetched and
// checked before the handler runs, and a result over
// tasker.result_upload.inline_limit is uploaded and returned as a
// reference. Their failures are handled failures ({"tasker_error": …} with
// a code), never Lambda errors, so the engine sees code and permanence.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { pathToFileURL } = require('url');

const env = process.env;

function makeContext(deadlineMs, finish) {
  return {
    functionName: env.AWS_LAMBDA_FUNCTION_NAME || '',
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION || '$LATEST',
    invokedFunctionArn: env.TASKER_SHIM_FUNCTION_ARN || '',
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE || '128',
    awsRequestId: env.TASKER_SHIM_REQUEST_ID || '',
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME || '',
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME || '',
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis() {
      return Math.max(0, Math.floor(deadlineMs - Date.now()));
    },
    // Legacy completion methods the runtime still offers.
    done(err, res) { finish(err, res); },
    succeed(res) { finish(null, res); },
    fail(err) { finish(err); },
  };
}

class PayloadError extends Error {
  constructor(message, code, permanent) {
    super(message);
    this.code = code;
    this.permanent = permanent;
  }

  envelope() {
    return { tasker_error: { message: this.message, permanent: this.permanent, retry_after_seconds: 0, code: this.code } };
  }
}

const invalid = (message) => new PayloadError(message, 'payload_ref_invalid', true);

// blobSignal bounds an HTTP exchange by the step's deadline.
function blobSignal(deadlineMs) {
  return AbortSignal.timeout(deadlineMs > 0 ? Math.max(100, Math.floor(deadlineMs - Date.now())) : 60000);
}

const sha256Hex = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

// asRef returns the reference value stands for, or null when value is data.
// Like contract.AsRef: an object whose only member is "tasker_ref"; a
// malformed one is an error, never data.
function asRef(value, what) {
  if (!isObject(value) || Object.keys(value).length !== 1 || !('tasker_ref' in value)) return null;
  const ref = value.tasker_ref;
  const shown = String(JSON.stringify(ref)).slice(0, 200);
  if (!isObject(ref)) throw invalid(`${what}: malformed tasker_ref: want an object, got ${shown}`);
  if (typeof ref.uri !== 'string' || ref.uri === '' || !Number.isSafeInteger(ref.size) || ref.size < 0 ||
      typeof ref.sha256 !== 'string' || ref.sha256.length !== 64) {
    throw invalid(`${what}: malformed tasker_ref: want uri, size >= 0 and a 64-digit hex sha256, got ${shown}`);
  }
  if (typeof ref.url !== 'string' || ref.url === '') throw invalid(`${what}: reference ${ref.uri} has no url`);
  return ref;
}

async function resolveValue(value, what, deadlineMs) {
  const ref = asRef(value, what);
  if (ref === null) return value;
  try {
    new URL(ref.url); // eslint-disable-line no-new
  } catch (e) {
    throw invalid(`${what}: reference url: ${e.message}`);
  }
  const unavailable = (msg) => new PayloadError(`${what}: fetch ${ref.uri}: ${msg}`, 'payload_unavailable', false);
  let body;
  try {
    const resp = await fetch(ref.url, { signal: blobSignal(deadlineMs) });
    if (resp.status !== 200) {
      await resp.body?.cancel();
      throw unavailable(`HTTP ${resp.status}`);
    }
    body = Buffer.from(await resp.arrayBuffer());
  } catch (e) {
    if (e instanceof PayloadError) throw e;
    throw unavailable(e.cause ? `${e.message}: ${e.cause.message || e.cause}` : e.message);
  }
  if (body.length !== ref.size) throw invalid(`${what}: ${ref.uri} is not ${ref.size} bytes as its reference says`);
  if (sha256Hex(body) !== ref.sha256) throw invalid(`${what}: ${ref.uri} does not match the sha256 of its reference`);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw invalid(`${what}: ${ref.uri} is not JSON: ${e.message}`);
  }
}

// prepareEvent is the one place where the shim changes the event: payload
// references (large values kept out of line) are resolved here. It throws
// PayloadError.
async function prepareEvent(event, deadlineMs) {
  if (!isObject(event)) return event;
  if ('context' in event) event.context = await resolveValue(event.context, 'context', deadlineMs);
  if (isObject(event.results)) {
    for (const name of Object.keys(event.results)) {
      event.results[name] = await resolveValue(event.results[name], `result of ${name}`, deadlineMs);
    }
  }
  return event;
}

function resultUpload(event) {
  const up = isObject(event) && isObject(event.tasker) ? event.tasker.result_upload : undefined;
  return isObject(up) ? up : null;
}

// offloadResult returns the JSON text to return for a result encoded as
// text: text itself within the inline limit, else the reference to its
// upload.
async function offloadResult(up, text, deadlineMs) {
  const data = Buffer.from(text, 'utf8');
  if (!Number.isFinite(up.inline_limit) || data.length <= up.inline_limit) return text;
  if (up.max_bytes > 0 && data.length > up.max_bytes) {
    throw new PayloadError(`result is ${data.length} bytes, over the ${up.max_bytes}-byte limit on step results (TASKER_PAYLOAD_MAX_BYTES)`,
      'result_too_large', true);
  }
  try {
    new URL(up.url); // eslint-disable-line no-new
  } catch (e) {
    throw invalid(`result upload url: ${e.message}`);
  }
  const failed = (msg) => new PayloadError(`upload result: ${msg}`, 'result_upload_failed', false);
  try {
    const resp = await fetch(up.url, { method: 'PUT', body: data, signal: blobSignal(deadlineMs) });
    await resp.body?.cancel();
    if (Math.floor(resp.status / 100) !== 2) throw failed(`HTTP ${resp.status}`);
  } catch (e) {
    if (e instanceof PayloadError) throw e;
    throw failed(e.cause ? `${e.message}: ${e.cause.message || e.cause}` : e.message);
  }
  return JSON.stringify({ tasker_ref: { uri: up.uri, size: data.length, sha256: sha256Hex(data) } });
}

function errorBody(type, message, err) {
  const body = { errorMessage: message, errorType: type };
  if (err && typeof err.stack === 'string') {
    body.stackTrace = err.stack.split('\n').slice(1).map((l) => l.trim());
  }
  return { error: body };
}

function fromThrown(err) {
  if (err instanceof Error) {
    return errorBody(err.name || (err.constructor && err.constructor.name) || 'Error', err.message, err);
  }
  let msg;
  try { msg = typeof err === 'string' ? err : JSON.stringify(err); } catch (e) { msg = String(err); }
  return errorBody('Error', String(msg));
}

async function loadHandler(root, handler) {
  const dot = handler.lastIndexOf('.');
  if (dot <= 0 || dot === handler.length - 1) {
    throw Object.assign(new Error(`Bad handler ${handler}: want file.function`), { lambdaType: 'Runtime.MalformedHandlerName' });
  }
  const file = handler.slice(0, dot);
  const fnName = handler.slice(dot + 1);
  const base = path.resolve(root, file);
  const found = ['.js', '.mjs', '.cjs', ''].map((ext) => base + ext).find((p) => fs.existsSync(p) && fs.statSync(p).isFile());
  if (!found) {
    throw Object.assign(new Error(`Cannot find module '${file}' in ${root}`), { lambdaType: 'Runtime.ImportModuleError' });
  }
  let mod;
  try {
    mod = await import(pathToFileURL(found).href);
  } catch (e) {
    throw Object.assign(new Error(`${e && e.message}`), { lambdaType: 'Runtime.ImportModuleError', cause: e });
  }
  let fn = mod[fnName];
  if (typeof fn !== 'function' && mod.default) fn = mod.default[fnName];
  if (typeof fn !== 'function') {
    throw Object.assign(new Error(`${file}.${fnName} is undefined or not exported`), { lambdaType: 'Runtime.HandlerNotFound' });
  }
  return fn;
}

async function run(input) {
  let fn;
  try {
    fn = await loadHandler(env.LAMBDA_TASK_ROOT || '.', env.TASKER_SHIM_HANDLER || '');
  } catch (e) {
    return errorBody(e.lambdaType || 'Runtime.ImportModuleError', e.message, e.cause || e);
  }
  let event;
  try {
    event = JSON.parse(input);
  } catch (e) {
    return errorBody('Runtime.UnmarshalError', `Unable to unmarshal input: ${e.message}`, e);
  }
  const deadline = Number(env.TASKER_SHIM_DEADLINE_MS || '0');
  const upload = resultUpload(event);
  try {
    event = await prepareEvent(event, deadline);
  } catch (e) {
    if (e instanceof PayloadError) return { result: e.envelope() };
    throw e;
  }
  const body = await invoke(fn, event, deadline);
  if (upload === null || !('result' in body)) return body;
  let text;
  try {
    text = JSON.stringify(body.result);
  } catch (e) {
    return body; // main reports the Runtime.MarshalError
  }
  if (text === undefined) return body;
  try {
    // The text already measured goes out as is.
    return { resultJSON: await offloadResult(upload, text, deadline) };
  } catch (e) {
    if (e instanceof PayloadError) return { result: e.envelope() };
    throw e;
  }
}

function invoke(fn, event, deadline) {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (err, res) => {
      if (settled) return;
      settled = true;
      resolve(err !== null && err !== undefined ? fromThrown(err) : { result: res === undefined ? null : res });
    };
    let ret;
    try {
      ret = fn(event, makeContext(deadline, finish), finish);
    } catch (e) {
      finish(e);
      return;
    }
    if (ret && typeof ret.then === 'function') {
      ret.then((res) => finish(null, res), (err) => finish(err === undefined ? new Error('handler rejected with undefined') : err));
    } else if (fn.length < 3) {
      // Neither async nor callback style: the returned value is the result.
      finish(null, ret);
    }
  });
}

function main() {
  const input = fs.readFileSync(0, 'utf8');
  run(input).then((body) => {
    let line;
    try {
      line = 'resultJSON' in body ? `{"result":${body.resultJSON}}` : JSON.stringify(body);
    } catch (e) {
      line = JSON.stringify(errorBody('Runtime.MarshalError', `Unable to stringify response body: ${e.message}`));
    }
    fs.writeSync(3, line + '\n');
    process.exit(0);
  }, (e) => {
    fs.writeSync(3, JSON.stringify(fromThrown(e)) + '\n');
    process.exit(0);
  });
}

// An error thrown outside the handler's promise (a timer callback) crashes
// the function, as on Lambda.
process.on('uncaughtException', (e) => {
  try { fs.writeSync(3, JSON.stringify(fromThrown(e)) + '\n'); } finally { process.exit(129); }
});
process.on('unhandledRejection', (e) => {
  try { fs.writeSync(3, JSON.stringify(errorBody('Runtime.UnhandledPromiseRejection', String(e && e.message || e), e)) + '\n'); } finally { process.exit(128); }
});

main();
