package steps

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// kubeadm names every cluster's entries the same way: cluster "kubernetes",
// user "kubernetes-admin", context "kubernetes-admin@kubernetes". Merged into
// a kubeconfig that already holds another kubeadm cluster, those names would
// silently repoint the user's context for that cluster at this one. So
// fetch_admin_conf gives this cluster's entries names of their own, and
// replaces only entries that are for the same API server.

// kcNames are the names one cluster's entries get in a kubeconfig.
type kcNames struct {
	Cluster, User, Context string
	// Reused says the names are those of entries already there for the
	// same server (so they are replaced, not added).
	Reused bool
}

// server returns a cluster entry's server URL.
func (e kcNamed) server() string {
	c, _ := e.Rest["cluster"].(map[string]any)
	return str(c, "server")
}

// contextRefs returns a context entry's cluster and user.
func (e kcNamed) contextRefs() (cluster, user string) {
	c, _ := e.Rest["context"].(map[string]any)
	return str(c, "cluster"), str(c, "user")
}

// sameServer compares API server URLs, ignoring case in the host, a trailing
// slash, and the default port.
func sameServer(a, b string) bool {
	norm := func(s string) string {
		u, err := url.Parse(strings.TrimSuffix(s, "/"))
		if err != nil || u.Host == "" {
			return s
		}
		host, port := u.Hostname(), u.Port()
		if port == "" || (u.Scheme == "https" && port == "443") {
			port = "443"
		}
		return strings.ToLower(u.Scheme) + "://" + strings.ToLower(net.JoinHostPort(host, port)) + u.Path
	}
	return norm(a) == norm(b)
}

// endpointName is the default name of a cluster: its API server's host
// name or address ("k8s-api.prod.example", "10.0.0.10").
func endpointName(server string) string {
	if u, err := url.Parse(server); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return server
}

// find returns the index of the entry named name, or -1.
func find(list []kcNamed, name string) int {
	for i, e := range list {
		if e.Name == name {
			return i
		}
	}
	return -1
}

// chooseNames picks the names the fetched admin.conf's entries get in base
// (the kubeconfig it is merged into, maybe empty): the names of base's
// entries for the same server when there are such, or name (the cluster),
// "kubernetes-admin@name" (user and context). It refuses, naming the entry,
// when a name it needs is taken by an entry for another server.
func chooseNames(base *kcFile, server, name string) (kcNames, error) {
	n := kcNames{Cluster: name, User: "kubernetes-admin@" + name, Context: "kubernetes-admin@" + name}
	for _, c := range base.Clusters {
		if sameServer(c.server(), server) {
			n.Cluster, n.Reused = c.Name, true
			break
		}
	}
	if i := find(base.Clusters, n.Cluster); i >= 0 && !sameServer(base.Clusters[i].server(), server) {
		return n, fmt.Errorf("cluster %q in the kubeconfig is %s, not this cluster's %s: not repointing it; give this cluster another name with fetch_admin_conf's name: (or the inventory variable cluster_name)",
			n.Cluster, base.Clusters[i].server(), server)
	}
	if n.Reused {
		// A context of the same cluster names the user and context to reuse.
		for _, c := range base.Contexts {
			if cl, u := c.contextRefs(); cl == n.Cluster && u != "" {
				n.Context, n.User = c.Name, u
				break
			}
		}
	}
	// The user must not be one that contexts of other clusters use.
	for _, c := range base.Contexts {
		cl, u := c.contextRefs()
		if u == n.User && cl != n.Cluster {
			return n, fmt.Errorf("user %q in the kubeconfig is used by context %q for cluster %q: not replacing its credential; give this cluster another name with fetch_admin_conf's name: (or the inventory variable cluster_name)",
				n.User, c.Name, cl)
		}
		if c.Name == n.Context && cl != n.Cluster {
			return n, fmt.Errorf("context %q in the kubeconfig is for cluster %q: not repointing it; give this cluster another name with fetch_admin_conf's name: (or the inventory variable cluster_name)",
				n.Context, cl)
		}
	}
	return n, nil
}

// rename gives admin.conf's one cluster, user and context the names n, and
// makes that context current.
func (k *kcFile) rename(n kcNames) error {
	if len(k.Clusters) != 1 || len(k.Users) != 1 || len(k.Contexts) != 1 {
		return fmt.Errorf("admin.conf has %d clusters, %d users and %d contexts, not one of each as kubeadm writes it", len(k.Clusters), len(k.Users), len(k.Contexts))
	}
	k.Clusters[0].Name, k.Users[0].Name, k.Contexts[0].Name = n.Cluster, n.User, n.Context
	ctx, _ := k.Contexts[0].Rest["context"].(map[string]any)
	if ctx == nil {
		ctx = map[string]any{}
	}
	ctx["cluster"], ctx["user"] = n.Cluster, n.User
	if k.Contexts[0].Rest == nil {
		k.Contexts[0].Rest = map[string]any{}
	}
	k.Contexts[0].Rest["context"] = ctx
	k.CurrentContext = n.Context
	return nil
}
