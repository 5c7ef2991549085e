package incidents

import (
	"math/rand/v2"
	"time"
)

// crockford is Crockford's base32 alphabet in lower case: it has no '-', so
// event.IncidentStreet can split the street off at the last one.
const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

// newIDFunc returns the default NewID: "INC-<street>-" and 16 base32 characters holding 48 bits
// of milliseconds then 32 random bits, so ids sort by creation time and two instances that
// briefly both own a street during a rebalance do not collide.
func newIDFunc(now func() time.Time) func(street string) string {
	return func(street string) string {
		ms := uint64(now().UnixMilli()) & (1<<48 - 1)
		// 80 bits in two halves of 40 (8 characters each).
		hi := ms >> 8
		lo := (ms&0xff)<<32 | uint64(rand.Uint32())
		var b [16]byte
		for i := 7; i >= 0; i-- {
			b[i], b[i+8] = crockford[hi&31], crockford[lo&31]
			hi, lo = hi>>5, lo>>5
		}
		return "INC-" + street + "-" + string(b[:])
	}
}
