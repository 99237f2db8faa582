package broker

// CreateAcls v0-3, DescribeAcls v0-3 and DeleteAcls v0-3 (KIP-11,
// KIP-290 pattern types from v1). ACLs live in the metadata log
// (controller/acls.go); any node answers, forwarding changes to the
// metadata quorum's leader. The authorizer deciding requests is rebuilt
// from the image whenever an ACL record applies, and swapped in whole, so
// a decision takes no lock.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/acl"
	"github.com/weir-broker/weir/internal/metadata"
)

// authorizerSettings reads authorizer.class.name, super.users and
// allow.everyone.if.no.acl.found.
func (b *Broker) authorizerSettings() acl.Settings {
	return acl.Settings{
		Enabled:      b.settings.Get("authorizer.class.name") == acl.StandardAuthorizer,
		SuperUsers:   acl.ParseSuperUsers(b.settings.Get("super.users")),
		AllowIfNoACL: b.settings.Bool("allow.everyone.if.no.acl.found"),
	}
}

// rebuildAuthorizer swaps in an authorizer over the image's ACLs.
func (b *Broker) rebuildAuthorizer(im *metadata.Image) {
	b.authz.Store(acl.New(b.authorizerSettings(), im.ACLs))
}

// authorizer is the current authorizer.
func (b *Broker) authorizer() *acl.Authorizer { return b.authz.Load() }

func (b *Broker) handleCreateAcls(req *kmsg.CreateACLsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	resp.Results = make([]kmsg.CreateACLsResponseResult, len(req.Creations))
	var valid []acl.Binding
	var at []int
	for i, c := range req.Creations {
		r := kmsg.NewCreateACLsResponseResult()
		pt := c.ResourcePatternType
		if req.Version == 0 {
			pt = acl.Literal
		}
		bd := acl.Binding{ResourceType: c.ResourceType, ResourceName: c.ResourceName, PatternType: pt,
			Principal: c.Principal, Host: c.Host, Operation: c.Operation, Permission: c.PermissionType}
		if err := bd.Validate(); err != nil {
			r.ErrorCode, r.ErrorMessage = kerr.InvalidRequest.Code, errMessage(err)
		} else {
			valid, at = append(valid, bd), append(at, i)
		}
		resp.Results[i] = r
	}
	if len(valid) > 0 {
		if err := b.ctrl.CreateACLs(valid); err != nil {
			for _, i := range at {
				resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = errCode(err), errMessage(err)
			}
		}
	}
	return resp
}

// filterOf reads a DescribeAcls or DeleteAcls filter; v0 has no pattern
// type and means LITERAL.
func filterOf(version int16, rt kmsg.ACLResourceType, name *string, pt kmsg.ACLResourcePatternType, principal, host *string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) (acl.Filter, error) {
	if version == 0 {
		pt = acl.Literal
	}
	f := acl.Filter{ResourceType: rt, ResourceName: name, PatternType: pt, Principal: principal, Host: host, Operation: op, Permission: perm}
	return f, f.Validate()
}

func (b *Broker) handleDescribeAcls(req *kmsg.DescribeACLsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	f, err := filterOf(req.Version, req.ResourceType, req.ResourceName, req.ResourcePatternType, req.Principal, req.Host, req.Operation, req.PermissionType)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, errMessage(err)
		return resp
	}
	type key struct {
		rt   kmsg.ACLResourceType
		name string
		pt   kmsg.ACLResourcePatternType
	}
	index := make(map[key]int)
	for _, bd := range b.ctrl.ACLs() {
		if !f.Matches(bd) {
			continue
		}
		k := key{bd.ResourceType, bd.ResourceName, bd.PatternType}
		i, ok := index[k]
		if !ok {
			r := kmsg.NewDescribeACLsResponseResource()
			r.ResourceType, r.ResourceName, r.ResourcePatternType = bd.ResourceType, bd.ResourceName, bd.PatternType
			resp.Resources = append(resp.Resources, r)
			i = len(resp.Resources) - 1
			index[k] = i
		}
		a := kmsg.NewDescribeACLsResponseResourceACL()
		a.Principal, a.Host, a.Operation, a.PermissionType = bd.Principal, bd.Host, bd.Operation, bd.Permission
		resp.Resources[i].ACLs = append(resp.Resources[i].ACLs, a)
	}
	return resp
}

func (b *Broker) handleDeleteAcls(req *kmsg.DeleteACLsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	resp.Results = make([]kmsg.DeleteACLsResponseResult, len(req.Filters))
	var filters []acl.Filter
	var at []int
	for i, rf := range req.Filters {
		r := kmsg.NewDeleteACLsResponseResult()
		f, err := filterOf(req.Version, rf.ResourceType, rf.ResourceName, rf.ResourcePatternType, rf.Principal, rf.Host, rf.Operation, rf.PermissionType)
		if err != nil {
			r.ErrorCode, r.ErrorMessage = kerr.InvalidRequest.Code, errMessage(err)
		} else {
			filters, at = append(filters, f), append(at, i)
		}
		resp.Results[i] = r
	}
	if len(filters) == 0 {
		return resp
	}
	matched, err := b.ctrl.DeleteACLs(filters)
	for j, i := range at {
		if err != nil {
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = errCode(err), errMessage(err)
			continue
		}
		for _, bd := range matched[j] {
			m := kmsg.NewDeleteACLsResponseResultMatchingACL()
			m.ResourceType, m.ResourceName, m.ResourcePatternType = bd.ResourceType, bd.ResourceName, bd.PatternType
			m.Principal, m.Host, m.Operation, m.PermissionType = bd.Principal, bd.Host, bd.Operation, bd.Permission
			resp.Results[i].MatchingACLs = append(resp.Results[i].MatchingACLs, m)
		}
	}
	return resp
}
