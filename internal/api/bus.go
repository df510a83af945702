package api

import (
	"encoding/json"
	"time"
)

// The bus's operator API, served by internal/bus under /v1/bus/:
//
//	GET  /v1/bus/stats                BusStats
//	POST /v1/bus/{project}/{channel}  body: the payload (a JSON object); BusPublishResult
//	GET  /v1/bus/{project}/{channel}  Server-Sent Events "message", data = BusMessage

// BusStats answers GET /v1/bus/stats.
type BusStats struct {
	Node     string            `json:"node"`
	Channels []BusChannelStats `json:"channels"`
	Brokers  []BusBrokerStats  `json:"brokers"`
}

// BusChannelStats are one channel's counters since the daemon started.
type BusChannelStats struct {
	Project     string `json:"project"`
	Channel     string `json:"channel"`
	Durable     bool   `json:"durable"`
	Published   uint64 `json:"published"`   // messages that entered the channel on this node
	Delivered   uint64 `json:"delivered"`   // messages handed to subscribers (redeliveries count)
	Dropped     uint64 `json:"dropped"`     // messages a full subscriber buffer lost (non-durable only)
	Subscribers int    `json:"subscribers"` // current subscriptions (agents and operators)
}

// BusBrokerStats describe one project's broker bridge.
type BusBrokerStats struct {
	Project   string `json:"project"`
	URL       string `json:"url"` // password redacted
	Connected bool   `json:"connected"`
	Forwarded uint64 `json:"forwarded"` // local messages sent to the broker
	Received  uint64 `json:"received"`  // remote messages put on local channels
	Dropped   uint64 `json:"dropped"`   // outbound messages lost to a full queue during an outage
	Errors    uint64 `json:"errors"`    // failed publishes and connection losses
}

// BusPublishResult answers a successful POST /v1/bus/{project}/{channel}.
type BusPublishResult struct {
	ID string `json:"id"`
}

// BusMessage is one message of a channel.
type BusMessage struct {
	Project string          `json:"project"`
	Channel string          `json:"channel"`
	ID      string          `json:"id"`
	From    string          `json:"from"` // sending agent; "" for operator publishes
	Node    string          `json:"node"` // node id of the daemon it entered on
	Time    time.Time       `json:"time"`
	Payload json.RawMessage `json:"payload"`
}
