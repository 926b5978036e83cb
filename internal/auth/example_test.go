package auth_test

import (
	"context"
	"fmt"
	"time"

	"github.com/taskerhq/tasker/internal/auth"
)

func ExampleVerifier_Verify() {
	ctx := context.Background()
	secret := []byte("an-example-secret-of-at-least-32-bytes")

	v, err := auth.New(ctx, auth.Config{HS256Secret: secret})
	if err != nil {
		panic(err)
	}
	token, err := auth.SignHS256(secret, map[string]any{
		"sub":   "alice",
		"exp":   time.Now().Add(time.Hour).Unix(),
		"scope": "tasks:* templates:read",
	})
	if err != nil {
		panic(err)
	}

	p, err := v.Verify(ctx, token)
	if err != nil {
		panic(err)
	}
	fmt.Println("subject:", p.Subject)
	fmt.Println("may create tasks:", p.Allows(auth.TasksCreate))
	fmt.Println("may resolve steps:", p.Allows(auth.StepsResolve))
	// Output:
	// subject: alice
	// may create tasks: true
	// may resolve steps: false
}
