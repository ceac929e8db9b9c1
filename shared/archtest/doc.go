// Package archtest holds tests of the house rules that span packages: the domain
// imports only the standard library and other domain packages; only adapters reach an
// SDK.
package archtest
