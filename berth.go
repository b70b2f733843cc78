// Package berth holds the domain of the Berth control plane: users, plans,
// containers, actions and the contracts (Driver, Store) that adapters
// implement. It imports only the standard library.
package berth

// Version is the berth release, stamped at build time with
// -ldflags "-X github.com/berth/berth.Version=…".
var Version = "dev"
