package transforms

import "github.com/backfillhq/backfill/pipeline/config"

// Plugins declares the package's transforms, each with its spec (the one
// place its fields, defaults and rules are written) and its constructor.
func Plugins() []config.Plugin {
	return []config.Plugin{
		config.TransformPlugin("map", mapSpec(), newMap),
		config.TransformPlugin("expand", expandSpec(), newExpand),
		config.TransformPlugin("timestamp", timestampSpec(), newTimestamp),
		config.TransformPlugin("strip", stripSpec(), newStrip),
		config.TransformPlugin("integrations", integrationsSpec(), newIntegrations),
		config.TransformPlugin("message_id", messageIDSpec(), newMessageID),
		config.TransformPlugin("filter", filterSpec(), newFilter),
		config.TransformPlugin("set", setSpec(), newSet),
		config.TransformPlugin("rename", renameSpec(), newRename),
		config.TransformPlugin("cast", castSpec(), newCast),
	}
}

func init() { config.Default.Register(Plugins()...) }
