package broker

// DescribeUserScramCredentials v0 and AlterUserScramCredentials v0
// (KIP-554). Credentials live in the metadata log (controller/scram.go);
// any node answers, forwarding changes to the metadata quorum's leader.
// An alteration is all or nothing per user: a user any of whose changes is
// refused gets that error and none of its changes. Mechanisms are numbered
// as in the protocol: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512.

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/controller"
	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/security"
)

// scramMechanismName names a protocol mechanism number, or "" when it is
// not one.
func scramMechanismName(m int8) string {
	switch m {
	case 1:
		return security.ScramSHA256
	case 2:
		return security.ScramSHA512
	}
	return ""
}

func scramMechanismNumber(name string) int8 {
	if name == security.ScramSHA512 {
		return 2
	}
	return 1
}

func (b *Broker) handleDescribeUserScramCredentials(req *kmsg.DescribeUserSCRAMCredentialsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	b.ctrl.View(func(im *metadata.Image) {
		users := im.ScramUsers()
		asked := req.Users != nil
		if asked {
			users = users[:0:0]
			for _, u := range req.Users {
				users = append(users, u.Name)
			}
		}
		counts := make(map[string]int)
		for _, u := range users {
			counts[u]++
		}
		for _, u := range users {
			r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
			r.User = u
			switch {
			case counts[u] > 1:
				r.ErrorCode, r.ErrorMessage = kerr.DuplicateResource.Code, errMessage(fmt.Errorf("user %q is asked for more than once", u))
			case len(im.Scram[u]) == 0:
				r.ErrorCode, r.ErrorMessage = kerr.ResourceNotFound.Code, errMessage(fmt.Errorf("user %q has no SCRAM credential", u))
			default:
				for _, m := range slices.Sorted(maps.Keys(im.Scram[u])) {
					ci := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
					ci.Mechanism, ci.Iterations = scramMechanismNumber(m), im.Scram[u][m].Iterations
					r.CredentialInfos = append(r.CredentialInfos, ci)
				}
			}
			resp.Results = append(resp.Results, r)
		}
	})
	return resp
}

func (b *Broker) handleAlterUserScramCredentials(req *kmsg.AlterUserSCRAMCredentialsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	type change struct {
		ch  controller.ScramChange
		err error
	}
	var order []string
	byUser := make(map[string][]change)
	seen := make(map[[2]string]bool)
	add := func(user string, mech int8, cred func(name string) (*metadata.ScramCredential, error)) {
		if _, ok := byUser[user]; !ok {
			order = append(order, user)
		}
		name := scramMechanismName(mech)
		c := change{ch: controller.ScramChange{User: user, Mechanism: name}}
		switch {
		case user == "":
			c.err = wrap(kerr.UnacceptableCredential, errors.New("the user name is empty"))
		case name == "":
			c.err = wrap(kerr.UnsupportedSaslMechanism, fmt.Errorf("mechanism %d is not SCRAM-SHA-256 (1) or SCRAM-SHA-512 (2)", mech))
		case seen[[2]string{user, name}]:
			c.err = wrap(kerr.DuplicateResource, fmt.Errorf("user %q, %s is changed more than once in one request", user, name))
		default:
			c.ch.Credential, c.err = cred(name)
		}
		seen[[2]string{user, name}] = true
		byUser[user] = append(byUser[user], c)
	}
	for _, d := range req.Deletions {
		add(d.Name, d.Mechanism, func(name string) (*metadata.ScramCredential, error) {
			if _, ok := b.ctrl.ScramCredential(d.Name, name); !ok {
				return nil, wrap(kerr.ResourceNotFound, fmt.Errorf("user %q has no %s credential", d.Name, name))
			}
			return nil, nil
		})
	}
	for _, u := range req.Upsertions {
		add(u.Name, u.Mechanism, func(name string) (*metadata.ScramCredential, error) {
			cred, err := security.CredentialFromSalted(name, u.Salt, u.SaltedPassword, int(u.Iterations))
			if err != nil {
				return nil, wrap(kerr.UnacceptableCredential, err)
			}
			return &cred, nil
		})
	}
	var changes []controller.ScramChange
	var owners []string
	userErr := make(map[string]error)
	for _, user := range order {
		for _, c := range byUser[user] {
			if c.err != nil && userErr[user] == nil {
				userErr[user] = c.err
			}
		}
		if userErr[user] != nil {
			continue
		}
		for _, c := range byUser[user] {
			changes = append(changes, c.ch)
			owners = append(owners, user)
		}
	}
	if len(changes) > 0 {
		errs, err := b.ctrl.AlterScram(changes)
		for i, user := range owners {
			if e := cmpErr(err, errs[i]); e != nil && userErr[user] == nil {
				userErr[user] = e
			}
		}
	}
	for _, user := range order {
		r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		r.User = user
		if err := userErr[user]; err != nil {
			r.ErrorCode, r.ErrorMessage = errCode(err), errMessage(err)
		}
		resp.Results = append(resp.Results, r)
	}
	return resp
}

// cmpErr is the batch's error if it failed, else the change's own.
func cmpErr(batch, own error) error {
	if batch != nil {
		return batch
	}
	return own
}

// ScramCredential is user's credential for mechanism, for the SASL
// listeners' authenticator.
func (b *Broker) ScramCredential(user, mechanism string) (metadata.ScramCredential, bool) {
	return b.ctrl.ScramCredential(user, mechanism)
}
