package examples

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/taskerhq/tasker/sdk"
)

// Order context (either spelling):
//
//	{"order_id": "…", "customer": {"email", "name"} | "customer_info": {…} | "customer_email",
//	 "items" | "cart_items": [{"sku" | "product_id", "quantity", "price" | "unit_price"}],
//	 "currency": "USD", "payment" | "payment_info": {"method" | "payment_method", "token"},
//	 "shipping" | "shipping_address": {…}, "shipping_method": "standard|express|overnight",
//	 "simulate_payment_failures": N, "simulate_fraud": true}

type lineItem struct {
	SKU       string  `json:"sku"`
	Quantity  int     `json:"quantity"`
	UnitPrice float64 `json:"unit_price"`
	LineTotal float64 `json:"line_total"`
}

type orderSummary struct {
	OrderID       string     `json:"order_id"`
	CustomerEmail string     `json:"customer_email,omitempty"`
	CustomerName  string     `json:"customer_name,omitempty"`
	Items         []lineItem `json:"items"`
	ItemCount     int        `json:"item_count"`
	Subtotal      float64    `json:"subtotal"`
	Tax           float64    `json:"tax"`
	Shipping      float64    `json:"shipping"`
	Total         float64    `json:"total"`
	TotalCents    int64      `json:"total_cents"`
	Currency      string     `json:"currency"`
}

// buildOrder validates the order in the context and prices it.
func buildOrder(in sdk.Input, d doc) (*orderSummary, error) {
	raw := d.list("items", "cart_items", "order.items")
	if len(raw) == 0 {
		return nil, permanent("empty_order", "order has no items (context.items is empty or missing)")
	}
	o := &orderSummary{
		OrderID:       d.str("order_id", "order.id"),
		CustomerEmail: strings.ToLower(d.str("customer.email", "customer_info.email", "customer_email", "email")),
		CustomerName:  d.str("customer.name", "customer_info.name", "customer_name"),
		Currency:      strings.ToUpper(d.str("currency", "order.currency")),
	}
	if o.OrderID == "" {
		o.OrderID = stableID("ord_", in, "order")
	}
	if o.Currency == "" {
		o.Currency = "USD"
	}
	var subtotal int64
	for i, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			return nil, permanent("invalid_item", "items[%d] is not an object", i)
		}
		it := doc(m)
		sku := it.str("sku", "product_id", "id")
		if sku == "" {
			return nil, permanent("invalid_item", "items[%d] has no sku or product_id", i)
		}
		qty := it.integer(1, "quantity", "qty")
		if qty < 1 || qty > 999 {
			return nil, permanent("invalid_item", "items[%d] (%s) has quantity %d, want 1-999", i, sku, qty)
		}
		price, ok := it.num("price", "unit_price")
		if !ok {
			price = float64(10+hashInt(90, "price", sku)) - 0.01 // catalogue lookup stand-in
		}
		if price < 0 {
			return nil, permanent("invalid_item", "items[%d] (%s) has a negative price", i, sku)
		}
		line := cents(price) * int64(qty)
		subtotal += line
		o.Items = append(o.Items, lineItem{SKU: sku, Quantity: qty, UnitPrice: dollars(cents(price)), LineTotal: dollars(line)})
		o.ItemCount += qty
	}
	taxRate := configFloat(in, "tax_rate", 0)
	tax := int64(float64(subtotal)*taxRate + 0.5)
	var shipping int64
	if subtotal < 5000 { // free shipping from $50
		shipping = 599
	}
	total := subtotal + tax + shipping
	o.Subtotal, o.Tax, o.Shipping, o.Total, o.TotalCents = dollars(subtotal), dollars(tax), dollars(shipping), dollars(total), total
	return o, nil
}

// order returns the validated order from a parent result, or validates the
// context when no parent carries one.
func order(in sdk.Input, d doc) (*orderSummary, error) {
	if p, ok := parentWith(in, "order_id", "total_cents", "items"); ok {
		var o orderSummary
		if err := remarshal(p, &o); err == nil {
			return &o, nil
		}
	}
	return buildOrder(in, d)
}

// orderFrom reads the task context and the order the step works on.
func orderFrom(in sdk.Input) (doc, *orderSummary, error) {
	d, err := contextDoc(in)
	if err != nil {
		return nil, nil, err
	}
	o, err := order(in, d)
	return d, o, err
}

func validateOrder(ctx context.Context, in sdk.Input) (any, error) {
	d, err := contextDoc(in)
	if err != nil {
		return nil, err
	}
	o, err := buildOrder(in, d)
	if err != nil {
		return nil, err
	}
	if o.CustomerEmail != "" && !validEmail(o.CustomerEmail) {
		return nil, permanent("invalid_email", "customer email %q is not valid", o.CustomerEmail)
	}
	return o, nil
}

var disposableDomains = map[string]bool{"mailinator.com": true, "tempmail.com": true, "10minutemail.com": true}

func fraudCheck(ctx context.Context, in sdk.Input) (any, error) {
	d, o, err := orderFrom(in)
	if err != nil {
		return nil, err
	}
	score := 5
	reasons := []string{}
	if o.TotalCents > 100000 {
		score += 35
		reasons = append(reasons, "order total over 1,000")
	}
	if o.ItemCount > 20 {
		score += 20
		reasons = append(reasons, "more than 20 items")
	}
	if at := strings.LastIndexByte(o.CustomerEmail, '@'); at >= 0 && disposableDomains[o.CustomerEmail[at+1:]] {
		score += 40
		reasons = append(reasons, "disposable email domain")
	}
	if d.boolean("simulate_fraud") {
		score = 99
		reasons = append(reasons, "simulated fraud")
	}
	limit := int(configFloat(in, "max_risk_score", 80))
	if score > limit {
		return nil, permanent("fraud_suspected", "order %s rejected: risk score %d over %d (%s)",
			o.OrderID, score, limit, strings.Join(reasons, ", "))
	}
	return map[string]any{
		"order_id":   o.OrderID,
		"risk_score": score,
		"decision":   "approve",
		"reasons":    reasons,
		"checked_at": now(),
	}, nil
}

func processPayment(ctx context.Context, in sdk.Input) (any, error) {
	d, err := contextDoc(in)
	if err != nil {
		return nil, err
	}
	if err := simulatedFailure(in, d, "simulate_payment_failures", "gateway_timeout", "payment gateway timed out"); err != nil {
		return nil, err
	}
	o, err := order(in, d)
	if err != nil {
		return nil, err
	}
	token := d.str("payment.token", "payment_info.token", "payment_token")
	switch token {
	case "tok_declined", "tok_chargeDeclined":
		return nil, permanent("card_declined", "card declined for order %s", o.OrderID)
	case "tok_insufficient_funds":
		return nil, permanent("insufficient_funds", "insufficient funds for order %s", o.OrderID)
	}
	if err := ctxCheck(ctx); err != nil {
		return nil, err
	}
	method := d.str("payment.method", "payment_info.payment_method", "payment_info.method", "payment_method")
	if method == "" {
		method = "card"
	}
	return map[string]any{
		"payment_id":      stableID("pay_", in, "payment"),
		"order_id":        o.OrderID,
		"amount":          o.Total,
		"amount_cents":    o.TotalCents,
		"currency":        o.Currency,
		"method":          method,
		"status":          "captured",
		"idempotency_key": in.IdempotencyKey(),
		"attempt":         in.Attempt(),
		"captured_at":     now(),
	}, nil
}

func updateInventory(ctx context.Context, in sdk.Input) (any, error) {
	_, o, err := orderFrom(in)
	if err != nil {
		return nil, err
	}
	warehouses := []string{"WH-EAST-1", "WH-WEST-2", "WH-CENTRAL-3"}
	type reservation struct {
		SKU       string `json:"sku"`
		Quantity  int    `json:"quantity"`
		Warehouse string `json:"warehouse"`
		Remaining int    `json:"remaining"`
	}
	res := make([]reservation, 0, len(o.Items))
	for _, it := range o.Items {
		stock := hashInt(500, "stock", it.SKU) + 20
		if it.Quantity > stock {
			return nil, permanent("out_of_stock", "%s: %d requested, %d in stock", it.SKU, it.Quantity, stock)
		}
		res = append(res, reservation{
			SKU: it.SKU, Quantity: it.Quantity,
			Warehouse: warehouses[hashInt(len(warehouses), "warehouse", it.SKU)],
			Remaining: stock - it.Quantity,
		})
	}
	return map[string]any{
		"reservation_id": stableID("res_", in, "inventory"),
		"order_id":       o.OrderID,
		"reservations":   res,
		"updated_at":     now(),
	}, nil
}

func createShipment(ctx context.Context, in sdk.Input) (any, error) {
	d, o, err := orderFrom(in)
	if err != nil {
		return nil, err
	}
	method := strings.ToLower(d.str("shipping_method", "shipping.method"))
	if method == "" {
		method = "standard"
	}
	carriers := map[string]struct {
		carrier string
		days    int
	}{
		"standard":  {"UPS Ground", 5},
		"express":   {"FedEx Express Saver", 2},
		"overnight": {"FedEx Priority Overnight", 1},
	}
	c, ok := carriers[method]
	if !ok {
		return nil, permanent("invalid_shipping_method", "unknown shipping method %q (want standard, express or overnight)", method)
	}
	address, _ := d.get("shipping_address", "shipping.address", "customer.address", "customer_info.address")
	shipment := map[string]any{
		"shipment_id":        stableID("shp_", in, "shipment"),
		"order_id":           o.OrderID,
		"carrier":            c.carrier,
		"service":            method,
		"tracking_number":    "1Z" + strings.ToUpper(stableID("", in, "tracking")),
		"packages":           1 + o.ItemCount/10,
		"estimated_delivery": time.Now().UTC().AddDate(0, 0, c.days).Format("2006-01-02"),
		"created_at":         now(),
	}
	if address != nil {
		shipment["address"] = address
	}
	if p, ok := parentWith(in, "payment_id"); ok {
		shipment["payment_id"] = p["payment_id"]
	}
	return shipment, nil
}

func sendConfirmation(ctx context.Context, in sdk.Input) (any, error) {
	_, o, err := orderFrom(in)
	if err != nil {
		return nil, err
	}
	if o.CustomerEmail == "" {
		return nil, permanent("no_recipient", "order %s has no customer email to confirm to", o.OrderID)
	}
	summary := map[string]any{"order_id": o.OrderID, "total": o.Total, "currency": o.Currency, "items": o.ItemCount}
	if p, ok := parentWith(in, "payment_id"); ok {
		summary["payment_id"] = p["payment_id"]
	}
	if s, ok := parentWith(in, "tracking_number"); ok {
		summary["tracking_number"] = s["tracking_number"]
		summary["carrier"] = s["carrier"]
	}
	return map[string]any{
		"message_id": stableID("msg_", in, "confirmation"),
		"to":         o.CustomerEmail,
		"template":   in.ConfigString("template", "order_confirmation"),
		"subject":    fmt.Sprintf("Your order %s is confirmed", o.OrderID),
		"summary":    summary,
		"sent_at":    now(),
	}, nil
}
