// Command handler is the Azure Functions custom handler of the Teams contact center:
// the host starts it and calls it over HTTP (see shared/funchost). With -local it is
// also the local runner: it plays the host itself (shared/devhost), on embedded
// storage and a simulated tenant, so the whole app runs without an Azure account.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "handler:", err)
		os.Exit(1)
	}
}
