package auth

import "time"

// SetClock makes the Issuer read time from now, so expiry is tested without sleeping.
func (i *Issuer) SetClock(now func() time.Time) { i.now = now }
