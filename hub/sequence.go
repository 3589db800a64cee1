package hub

// sequence numbers one stream's messages: the positions a hub assigns as
// it publishes them. [Memory] keeps one per stream; the [Redis] hub's
// publish script does the same in Redis, with the state in a hash.
//
// Two publishers may carry a stream for a moment: an upstream handed over
// between nodes (make-before-break), or an owner that lost its lease and
// has not noticed yet. The newer origin wins: an older origin's messages
// are dropped, and so is any message whose ID is not after the last one
// numbered (an event already numbered). A switch to a newer origin is
// without gap only when that origin was seen repeating numbered events
// and continues its own Seq from there (then it carried everything after
// them), or when its first new event is known to follow the last one
// numbered (EventID.Continues: trade ids, diff depth update ids). Streams
// without IDs cannot prove it, so their switch is marked as a gap. Within
// one origin, a break in the publisher's own Seq is a gap too.
type sequence struct {
	epoch   string
	seq     uint64  // the position of the last message numbered
	origin  uint64  // its publisher (Message.Origin)
	srcSeq  uint64  // its publisher's Seq
	lastID  EventID // the ID of the last message numbered that had one
	next    uint64  // a newer publisher seen so far only repeating numbered events
	nextSrc uint64  // its Seq of the last such repeat
}

// number gives msg its position (Seq, Epoch) and sets its Gap when
// events may be missing before it; it reports false, changing nothing in
// msg, when msg must be dropped. An empty epoch starts a new one.
func (s *sequence) number(msg *Message) bool {
	if s.epoch == "" {
		*s = sequence{epoch: newEpoch()}
	}
	if msg.Origin < s.origin {
		return false
	}
	repeat := !msg.ID.IsZero() && !s.lastID.IsZero() && !msg.ID.After(s.lastID)
	gap := false
	switch {
	case msg.Origin > s.origin && repeat:
		s.next, s.nextSrc = msg.Origin, msg.Seq
		return false
	case msg.Origin > s.origin:
		proven := (s.next == msg.Origin && msg.Seq == s.nextSrc+1) || msg.ID.Continues(s.lastID)
		gap = s.seq > 0 && !proven
		s.origin, s.next = msg.Origin, 0
	case repeat:
		s.srcSeq = msg.Seq // its numbering goes on: nothing is lost
		return false
	default:
		gap = s.seq > 0 && msg.Seq != s.srcSeq+1
	}
	s.srcSeq = msg.Seq
	if !msg.ID.IsZero() {
		s.lastID = msg.ID
	}
	s.seq++
	msg.Seq, msg.Epoch, msg.Gap = s.seq, s.epoch, msg.Gap || gap
	return true
}
