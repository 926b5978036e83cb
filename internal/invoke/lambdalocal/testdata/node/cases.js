exports.ok = async (event, context) => {
  console.log('hello from node');
  return {
    echo: event.x, request_id: context.awsRequestId, function: context.functionName,
    remaining_ok: context.getRemainingTimeInMillis() > 0 && context.getRemainingTimeInMillis() <= 60000,
    memory: context.memoryLimitInMB, arn: context.invokedFunctionArn, env: process.env.GREETING,
  };
};
exports.callback = (event, context, callback) => {
  setTimeout(() => callback(null, { echo: event.x, style: 'callback' }), 5);
};
exports.callbackError = (event, context, callback) => {
  callback(new TypeError('bad input'));
};
exports.sync = (event) => ({ echo: event.x, style: 'sync' });
exports.handled = async () => ({ tasker_error: { message: 'no stock', permanent: true, code: 'out_of_stock' } });
class PaymentDeclined extends Error {
  constructor(m) { super(m); this.name = 'PaymentDeclined'; }
}
exports.raises = async () => { throw new PaymentDeclined('card declined'); };
exports.sleeps = () => new Promise((resolve) => setTimeout(() => resolve('late'), 30000));
exports.crashes = async () => { console.error('about to crash'); process.exit(3); };
exports.notJson = async () => ({ n: 10n });
exports.huge = async () => 'x'.repeat(7 << 20);
exports.returnsUndefined = async () => undefined;
exports.notAFunction = 42;
