{{/*
Chart name, overridable with nameOverride; used for app.kubernetes.io/name.
*/}}
{{- define "nova-image-shim.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full resource name: fullnameOverride, else "<release>-<name>" (just the release name when
it already contains the chart name), cut to the 63 characters a DNS label allows.
*/}}
{{- define "nova-image-shim.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Namespace of every resource: namespaceOverride, else the release namespace.
*/}}
{{- define "nova-image-shim.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Chart name and version for the helm.sh/chart label.
*/}}
{{- define "nova-image-shim.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels: only name and instance, because a Deployment's selector is immutable.
*/}}
{{- define "nova-image-shim.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nova-image-shim.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Common labels of every resource.
*/}}
{{- define "nova-image-shim.labels" -}}
helm.sh/chart: {{ include "nova-image-shim.chart" . }}
{{ include "nova-image-shim.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: compute-image-api
app.kubernetes.io/part-of: openstack
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
ServiceAccount the pods run as.
*/}}
{{- define "nova-image-shim.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "nova-image-shim.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Image reference: repository@digest when a digest is set, else repository:tag with the tag
defaulting to the chart's appVersion.
*/}}
{{- define "nova-image-shim.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/*
HOST:PORT for SHIM_LISTEN / SHIM_METRICS_LISTEN, bracketing IPv6 hosts.
Call with (list host port).
*/}}
{{- define "nova-image-shim.hostPort" -}}
{{- $host := index . 0 | toString -}}
{{- $port := index . 1 | int -}}
{{- if contains ":" $host -}}
{{- printf "[%s]:%d" $host $port -}}
{{- else -}}
{{- printf "%s:%d" $host $port -}}
{{- end -}}
{{- end -}}

{{/*
Scheme of the API port: https when tls.listenerSecret makes the shim serve TLS.
*/}}
{{- define "nova-image-shim.apiScheme" -}}
{{- ternary "https" "http" (not (empty .Values.tls.listenerSecret)) -}}
{{- end -}}

{{/*
In-cluster base URLs (no path) of the API Service and of the metrics Service.
*/}}
{{- define "nova-image-shim.apiUrl" -}}
{{- printf "%s://%s.%s.svc:%v" (include "nova-image-shim.apiScheme" .) (include "nova-image-shim.fullname" .) (include "nova-image-shim.namespace" .) .Values.service.port -}}
{{- end -}}

{{- define "nova-image-shim.metricsUrl" -}}
{{- printf "http://%s-metrics.%s.svc:%v" (include "nova-image-shim.fullname" .) (include "nova-image-shim.namespace" .) .Values.service.metricsPort -}}
{{- end -}}

{{/*
Name of the Secret holding SHIM_SERVICE_PASSWORD, or "" when there is none.
*/}}
{{- define "nova-image-shim.secretName" -}}
{{- if .Values.serviceCredentials.existingSecret -}}
{{- .Values.serviceCredentials.existingSecret -}}
{{- else if .Values.serviceCredentials.password -}}
{{- include "nova-image-shim.fullname" . -}}
{{- end -}}
{{- end -}}

{{/*
Refuse values that would give a pod the shim cannot start in, or one Kubernetes kills
before it has drained. Included by the Deployment so every render checks them.
*/}}
{{- define "nova-image-shim.validate" -}}
{{- $c := .Values.config -}}
{{- if not (has $c.auth (list "passthrough" "keystone" "trusted-headers")) -}}
{{- fail (printf "config.auth must be passthrough, keystone or trusted-headers, got %q" (toString $c.auth)) -}}
{{- end -}}
{{- if and (not $c.glanceUrl) (ne $c.auth "keystone") -}}
{{- fail "config.glanceUrl is required unless config.auth is keystone (then the token's catalogue may supply Glance)" -}}
{{- end -}}
{{- if and (eq $c.auth "keystone") (not $c.keystoneUrl) -}}
{{- fail "config.keystoneUrl is required when config.auth is keystone" -}}
{{- end -}}
{{- if and $c.serviceUsername (not (include "nova-image-shim.secretName" .)) -}}
{{- fail "config.serviceUsername needs serviceCredentials.existingSecret or serviceCredentials.password" -}}
{{- end -}}
{{- if and (eq $c.auth "trusted-headers") (not (has (toString .Values.listenHost) (list "127.0.0.1" "::1" "localhost"))) -}}
{{- fail "config.auth trusted-headers believes X-Project-Id/X-User-Id/X-Roles from any caller: set listenHost to 127.0.0.1 and put the authenticating proxy in extraContainers" -}}
{{- end -}}
{{- if not (and (gt (int $c.workers) 0) (eq (float64 $c.workers) (float64 (int $c.workers)))) -}}
{{- fail "config.workers must be a positive whole number" -}}
{{- end -}}
{{- $drain := addf (float64 .Values.lifecycle.preStopSleepSeconds) (float64 $c.shutdownTimeout) -}}
{{- if not (gt (float64 .Values.terminationGracePeriodSeconds) $drain) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed lifecycle.preStopSleepSeconds + config.shutdownTimeout (%v), or Kubernetes kills the shim while it drains" .Values.terminationGracePeriodSeconds $drain) -}}
{{- end -}}
{{- range $name, $_ := $c.extra -}}
{{- if not (hasPrefix "SHIM_" $name) -}}
{{- fail (printf "config.extra: %s is not a SHIM_* setting" $name) -}}
{{- end -}}
{{- if eq $name "SHIM_SERVICE_PASSWORD" -}}
{{- fail "config.extra: SHIM_SERVICE_PASSWORD belongs in a Secret: use serviceCredentials" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.podDisruptionBudget.enabled (ne (toString .Values.podDisruptionBudget.minAvailable) "") (ne (toString .Values.podDisruptionBudget.maxUnavailable) "") -}}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" -}}
{{- end -}}
{{- end -}}

{{/*
The shim's probes: named metrics port, fixed paths, timings from values.
Call with (list path timings).
*/}}
{{- define "nova-image-shim.probe" -}}
httpGet:
  path: {{ index . 0 }}
  port: metrics
  scheme: HTTP
{{ toYaml (index . 1) }}
{{- end -}}

{{/*
A value as an environment variable string: whole numbers without exponent or decimals
(YAML numbers arrive as float64), lists joined with commas, anything else as text.
*/}}
{{- define "nova-image-shim.envValue" -}}
{{- if and (kindIs "float64" .) (eq . (float64 (int64 .))) -}}
{{- printf "%d" (int64 .) -}}
{{- else if kindIs "slice" . -}}
{{- join "," . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/*
TLS volumes (values `tls`): the CA bundle, the client certificate and the listener's
certificate, each a whole Secret or ConfigMap mounted read-only (no subPath, so renewals
reach the pod). tlsMounts are the matching volumeMounts.
*/}}
{{- define "nova-image-shim.tlsVolumes" -}}
{{- $tls := .Values.tls -}}
{{- if and $tls.caBundle.configMap $tls.caBundle.secret }}
{{- fail "tls.caBundle: set configMap or secret, not both" }}
{{- end }}
{{- if $tls.caBundle.configMap }}
- name: tls-ca
  configMap:
    name: {{ $tls.caBundle.configMap }}
{{- else if $tls.caBundle.secret }}
- name: tls-ca
  secret:
    secretName: {{ $tls.caBundle.secret }}
{{- end }}
{{- if $tls.clientSecret }}
- name: tls-client
  secret:
    secretName: {{ $tls.clientSecret }}
{{- end }}
{{- if $tls.listenerSecret }}
{{ include "nova-image-shim.tlsListenerVolume" . }}
{{- end }}
{{- end }}

{{- define "nova-image-shim.tlsMounts" -}}
{{- $tls := .Values.tls -}}
{{- if or $tls.caBundle.configMap $tls.caBundle.secret }}
- name: tls-ca
  mountPath: /etc/nova-image-shim/tls/ca
  readOnly: true
{{- end }}
{{- if $tls.clientSecret }}
- name: tls-client
  mountPath: /etc/nova-image-shim/tls/client
  readOnly: true
{{- end }}
{{- if $tls.listenerSecret }}
{{ include "nova-image-shim.tlsListenerMount" . }}
{{- end }}
{{- end }}

{{/*
The listener's Secret as a volume and its read-only mount: the shim's, and the `helm test`
pod's (which verifies the API port with its CA).
*/}}
{{- define "nova-image-shim.tlsListenerVolume" -}}
- name: tls-listener
  secret:
    secretName: {{ .Values.tls.listenerSecret }}
{{- end -}}

{{- define "nova-image-shim.tlsListenerMount" -}}
- name: tls-listener
  mountPath: /etc/nova-image-shim/tls/listener
  readOnly: true
{{- end -}}
