// Package strictyaml reads YAML configuration strictly: one document, no
// duplicate keys, no unknown fields (with a "did you mean" hint), no silent
// type coercion, and every problem reported as file:line:col: field: what is
// wrong; how to fix.
//
// It owns the YAML front end and the one wording of problems shared by
// cortex.yaml (internal/manifest, which decodes its plain blocks with
// DecodeNode and Options and the few shapes a struct cannot say by hand)
// and the daemon's config.yaml (internal/config, which uses Decode). It
// must not know about either schema, read files, or touch the environment.
//
// Anchors, aliases and merge keys (<<) are accepted; a document whose aliases
// refer to themselves or expand past MaxNodes nodes is refused, so walking
// the tree (following aliases) is always bounded.
package strictyaml
