package fanout

import "testing"

func TestHub(t *testing.T) {
	t.Run("LatestValueReplacesAnUnreadOne", func(t *testing.T) {
		var h Hub[int]
		ch, unsub := h.Subscribe()
		defer unsub()
		h.Publish(1)
		h.Publish(2)
		if v := <-ch; v != 2 {
			t.Fatalf("got %d, want the latest value 2", v)
		}
		select {
		case v := <-ch:
			t.Fatalf("got %d after the latest value, want nothing pending", v)
		default:
		}
	})
	t.Run("EverySubscriberReceives", func(t *testing.T) {
		var h Hub[string]
		a, unsubA := h.Subscribe()
		defer unsubA()
		b, unsubB := h.Subscribe()
		defer unsubB()
		h.Publish("x")
		if got := <-a; got != "x" {
			t.Errorf("first subscriber got %q, want x", got)
		}
		if got := <-b; got != "x" {
			t.Errorf("second subscriber got %q, want x", got)
		}
	})
	t.Run("SubscribeWithStartsWithTheValue", func(t *testing.T) {
		var h Hub[int]
		ch, unsub := h.SubscribeWith(7)
		defer unsub()
		if v := <-ch; v != 7 {
			t.Fatalf("got %d, want the first value 7", v)
		}
	})
	t.Run("UnsubscribeClosesOnceAndStopsDelivery", func(t *testing.T) {
		var h Hub[struct{}]
		ch, unsub := h.Subscribe()
		unsub()
		unsub() // a second call does nothing
		h.Publish(struct{}{})
		if _, ok := <-ch; ok {
			t.Fatal("received on an ended subscription, want a closed channel")
		}
	})
}
