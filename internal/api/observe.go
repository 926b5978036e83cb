package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/store"
)

// Webhook subscriptions and template analytics (docs/operating.md,
// "Webhook subscriptions" and "Template analytics").

// Observer is what the API asks of the engine for subscriptions and
// analytics; *engine.Engine implements it. Config.Engine provides it when
// it implements it (the routes answer 404 otherwise).
type Observer interface {
	CreateSubscription(ctx context.Context, req engine.SubscriptionRequest) (store.Subscription, error)
	ListSubscriptions(ctx context.Context) ([]store.Subscription, error)
	DeleteSubscription(ctx context.Context, id uuid.UUID) error
	ListDeliveries(ctx context.Context, id uuid.UUID, limit int) ([]store.DeliveryView, error)
	TemplateAnalytics(ctx context.Context, q engine.AnalyticsQuery) (engine.TemplateAnalytics, error)
}

var _ Observer = (*engine.Engine)(nil)

// Subscription is the JSON shape of a webhook subscription; Secret is only
// in the answer to its creation.
type Subscription struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Description string   `json:"description"`
	MaxAttempts int      `json:"max_attempts"`
	CreatedAt   string   `json:"created_at"`
	Secret      string   `json:"secret,omitempty"`
	Pending     int64    `json:"pending_deliveries"`
	Dead        int64    `json:"dead_deliveries"`
}

func subscriptionOf(s store.Subscription) Subscription {
	return Subscription{ID: s.ID.String(), URL: s.URL, Events: s.Events, Description: s.Description,
		MaxAttempts: s.MaxAttempts, CreatedAt: ts(s.CreatedAt), Secret: s.Secret, Pending: s.Pending, Dead: s.Dead}
}

func (s *server) observer(w http.ResponseWriter, r *http.Request) (Observer, bool) {
	o, ok := s.eng.(Observer)
	if !ok {
		s.writeProblem(w, r, notFound("this deployment does not serve subscriptions or analytics"))
	}
	return o, ok
}

// invalidRequest maps engine.ErrInvalid to a 422 naming the problem.
func invalidRequest(err error) error {
	if errors.Is(err, engine.ErrInvalid) {
		return invalid(FieldError{Detail: err.Error()})
	}
	return err
}

// POST /v1/subscriptions
func (s *server) createSubscription(w http.ResponseWriter, r *http.Request) {
	o, ok := s.observer(w, r)
	if !ok {
		return
	}
	if _, err := query(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	obj, err := readObject(r, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req := engine.SubscriptionRequest{
		URL:         obj.required("url", 2000),
		Events:      obj.strings("events", 100, 200),
		Description: obj.str("description", 500),
		Secret:      obj.str("secret", 200),
	}
	if raw, present := obj.take("max_attempts"); present {
		n, err := strconv.Atoi(string(raw))
		if err != nil {
			obj.fail("max_attempts", "must be an integer")
		}
		req.MaxAttempts = n
		if n == 0 && err == nil {
			obj.fail("max_attempts", "must be from 1 to 50")
		}
	}
	if err := obj.finish(); err != nil {
		s.fail(w, r, err)
		return
	}
	sub, err := o.CreateSubscription(r.Context(), req)
	if err != nil {
		s.fail(w, r, invalidRequest(err))
		return
	}
	w.Header().Set("Location", "/v1/subscriptions/"+sub.ID.String())
	s.writeJSON(w, r, http.StatusCreated, subscriptionOf(sub))
}

// GET /v1/subscriptions
func (s *server) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	o, ok := s.observer(w, r)
	if !ok {
		return
	}
	if _, err := query(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	subs, err := o.ListSubscriptions(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := struct {
		Subscriptions []Subscription `json:"subscriptions"`
	}{Subscriptions: []Subscription{}}
	for _, sub := range subs {
		out.Subscriptions = append(out.Subscriptions, subscriptionOf(sub))
	}
	s.writeJSON(w, r, http.StatusOK, out)
}

func subscriptionID(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return uuid.Nil, badParam("id", "the subscription id must be a UUID")
	}
	return id, nil
}

// DELETE /v1/subscriptions/{id}
func (s *server) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	o, ok := s.observer(w, r)
	if !ok {
		return
	}
	id, err := subscriptionID(r)
	if err == nil {
		_, err = query(r, nil)
	}
	if err == nil {
		err = o.DeleteSubscription(r.Context(), id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// GET /v1/subscriptions/{id}/deliveries
func (s *server) listDeliveries(w http.ResponseWriter, r *http.Request) {
	o, ok := s.observer(w, r)
	if !ok {
		return
	}
	id, err := subscriptionID(r)
	var q map[string][]string
	if err == nil {
		q, err = query(r, []string{"limit"})
	}
	limit := 50
	if err == nil && len(q["limit"]) > 0 {
		n, perr := strconv.Atoi(q["limit"][0])
		if perr != nil || n < 1 || n > 500 {
			err = badParam("limit", "limit must be an integer from 1 to 500")
		}
		limit = n
	}
	var ds []store.DeliveryView
	if err == nil {
		ds, err = o.ListDeliveries(r.Context(), id, limit)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ds == nil {
		ds = []store.DeliveryView{}
	}
	s.writeJSON(w, r, http.StatusOK, struct {
		Deliveries []store.DeliveryView `json:"deliveries"`
	}{ds})
}

// GET /v1/analytics/templates/{namespace}/{name}
func (s *server) templateAnalytics(w http.ResponseWriter, r *http.Request) {
	o, ok := s.observer(w, r)
	if !ok {
		return
	}
	q, err := query(r, []string{"window", "version"})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	aq := engine.AnalyticsQuery{Namespace: r.PathValue("namespace"), Name: r.PathValue("name"), Version: q.Get("version")}
	if _, err := s.tpls.Get(aq.Namespace, aq.Name, aq.Version); err != nil {
		s.fail(w, r, err) // template.ErrNotFound: a 404 naming what is missing
		return
	}
	if v := q.Get("window"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute || d > engine.MaxAnalyticsWindow {
			s.fail(w, r, badParam("window", "window must be a duration from 1m to 2160h, such as 1h or 24h"))
			return
		}
		aq.Window = d
	}
	a, err := o.TemplateAnalytics(r.Context(), aq)
	if err != nil {
		s.fail(w, r, invalidRequest(err))
		return
	}
	s.writeJSON(w, r, http.StatusOK, a)
}
