// Package policies decides, by policy, whether a service item may be handled
// across districts and how.
//
// The policy is an OPA bundle: Rego under tongban/, Rego tests beside it, and
// the item catalog as data in tongban/catalog/data.json (contracts/catalog.md).
// This package loads such a bundle ([LoadBundle], [BundleFromTar], or the pilot
// bundle embedded in the binary, [Pilot]), computes its revision, validates it
// the way an administrator's draft must be validated before activation
// ([Bundle.Validate]), compiles it once ([Compile]) and evaluates the decision
// ([Engine.Decide]; a bundle that declares its decision day-granular,
// [TimeGranularityKey], has its decisions remembered per input and day). A [Switch] holds the active engine so that a new policy
// takes effect atomically for the next request.
//
// Policy is data and Rego, never Go: nothing here knows what an item is
// allowed to do. The catalog is looked up by key, so a decision costs the same
// for ten items as for twenty thousand.
package policies
