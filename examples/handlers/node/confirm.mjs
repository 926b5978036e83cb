// Confirms an order: a Node.js Lambda handler of the examples/order_pricing
// workflow. It reads the Python step's result from event.results.
// Deployed as its own function (template.yaml, ConfirmExampleFunction);
// run locally by `tasker dev` through lambdas.local.yaml (docs/handlers.md,
// "Node.js").
export const handler = async (event, context) => {
  const price = event.results.price_order;
  if (!price) {
    throw new Error('no price_order result'); // an unhandled error: retried
  }
  return {
    confirmation: `${event.context.order_id}-${event.tasker.attempt}`,
    total: price.total,
    currency: price.currency,
    confirmed_by: context.functionName,
    request_id: context.awsRequestId,
    had_time_left: context.getRemainingTimeInMillis() > 0,
  };
};
