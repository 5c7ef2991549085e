package auth

import "time"

// SetClock makes the Issuer read time from now, so expiry is tested without sleeping.
func (i *Issuer) SetClock(now func() time.Time) { i.now = now }

// SetClock makes the list read time from now, so its once-a-second reload is tested without sleeping.
func (r *Revocations) SetClock(now func() time.Time) { r.now = now }
