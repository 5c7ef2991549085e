// Package authoring is what rule authors work with: versions, dry runs and backtests of
// the rules of package lang, run on private engines of package engine.
//
// # Rules as data
//
// Versions of rules travel on the compacted city.rules topic as RuleVersion records; a
// Catalog holds them all (history with author and time, Diff between versions) and gives the
// current rules, which Engine.SetRules swaps in while events flow. The rules directory seeds
// the topic (Catalog.Seed). DryRun explains a rule on sample events, Backtest replays stored
// events through a new version and the current one, and package replay runs a file through
// ingest and the engine.
//
// The package must never import the city map or the transport: rules arrive as bytes or
// versions and leave as versions and reports.
package authoring
