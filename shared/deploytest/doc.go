// Package deploytest holds no code, only tests that keep the deployment in step with
// the application: azure.yaml, scripts/package.sh and the Bicep under infra/ against
// host.json, functions/*/function.json, shared/config.Settings and shared/tables.
//
// The Bicep compiler cannot run on the development machines, so the tests read the
// Bicep as text with a small scanner (comments and string literals masked) and check
// what matters for drift: app settings and their defaults, Service Bus queues and their
// session mode, tables, role assignments, the Teams calling bot (its app id and calling
// webhook against the app settings), module wiring (paths, parameters, outputs),
// bracket balance and API versions. Where behaviour matters more than spelling (the
// secret settings), a small evaluator computes what an expression yields for given
// parameter values and a given state of Azure (eval_test.go): a secret setting stays its
// Key Vault reference on a provision without the secret's value, and no provision
// writes an empty secret (secrets_test.go). They are a safety net, not a Bicep parser:
// write the Bicep in the plain style infra/ uses (one `key: value` per line, one-line
// expressions) and they stay reliable. README.md (Deploy to Azure) describes the
// deployment itself.
//
// Run them with `go test -race ./shared/deploytest/`; -short skips the one that builds
// the deployment package (a Linux -trimpath build of the handler).
package deploytest
