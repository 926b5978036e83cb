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
'use strict';
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

// prepareEvent is the one place where the shim changes the event: payload
// references (large values kept out of line) are resolved here.
async function prepareEvent(event) {
  return event;
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
    event = await prepareEvent(JSON.parse(input));
  } catch (e) {
    return errorBody('Runtime.UnmarshalError', `Unable to unmarshal input: ${e.message}`, e);
  }
  const deadline = Number(env.TASKER_SHIM_DEADLINE_MS || '0');
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
      line = JSON.stringify(body);
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
