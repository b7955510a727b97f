package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/pancake-pos/pancake-webhooks/pancake"
)

func newEventsCmd() *cobra.Command {
	f := &apiFlags{}
	cmd := groupCmd("events", "Publish events through the API (the POS side)", `  pancake-webhooks events publish --event order.created --data '{"order_id": "ord_1"}'`)
	cmd.Long = `Publish events of the shop through the API: each is queued for delivery to the
shop's active webhooks that subscribe to its type.
` + apiFlagsHelp
	f.register(cmd)
	cmd.AddCommand(eventsPublishCmd(f))
	return cmd
}

func eventsPublishCmd(f *apiFlags) *cobra.Command {
	var event, data, id string
	cmd := &cobra.Command{
		Use:   "publish --event EVENT --data JSON [--id KEY]",
		Short: "Publish an event to the shop's webhooks",
		Long: `Publish an event: it is stored when the command returns, and delivered to every
active webhook of the shop that subscribes to its type. --data is the event's
data, a JSON object: inline, @FILE, or - for stdin. --id is an idempotency
key: the same key again within 24 hours gives the first answer and queues
nothing, so a publish may safely be repeated.`,
		Example: `  pancake-webhooks events publish --event order.created --data '{"order_id": "ord_1", "total": 120000}'
  pancake-webhooks events publish --event inventory.updated --data @stock.json --id stock-2026-11-26-001
  pos-export | pancake-webhooks events publish --event order.updated --data - --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			payload, err := readData("data", data, cmd.InOrStdin())
			if err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			r, err := c.Events.Publish(cmd.Context(), pancake.PublishRequest{Event: pancake.WebhookEvent(event), Data: payload, ID: id})
			if err != nil {
				return f.apiErr(err)
			}
			return f.print(cmd.OutOrStdout(), r, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "Published %s (%s), queued for %s.\n", r.EventID, event, plural(r.Deliveries, "webhook", "webhooks"))
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&event, "event", "", "the event type")
	fl.StringVar(&data, "data", "", "the event's data: a JSON object, @FILE, or - for stdin")
	fl.StringVar(&id, "id", "", "idempotency key (the same key within 24 hours publishes once)")
	_ = cmd.MarkFlagRequired("event")
	_ = cmd.MarkFlagRequired("data")
	_ = cmd.RegisterFlagCompletionFunc("event", completeEvents)
	noEnvFlags(fl)
	return cmd
}
