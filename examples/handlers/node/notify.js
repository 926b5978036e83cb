// Callback-style Node.js handler: Lambda's older (event, context, callback)
// signature still works.
exports.handler = (event, context, callback) => {
  const confirm = event.results.confirm_order;
  setTimeout(() => callback(null, { notified: event.context.email, confirmation: confirm.confirmation }), 1);
};
