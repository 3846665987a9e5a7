{{/* Labels on every object: the app's own, and Helm's. */}}
{{- define "palisade.labels" -}}
app.kubernetes.io/name: palisade
app.kubernetes.io/component: webhook
app.kubernetes.io/part-of: palisade
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* What the Deployment, Service, PDB and policies select on. */}}
{{- define "palisade.selector" -}}
app.kubernetes.io/name: palisade
app.kubernetes.io/component: webhook
{{- end -}}

{{/*
The policy file: `config` as given, byte for byte, unless `exemptNamespaces`
says otherwise, in which case that list is written into it.
*/}}
{{- define "palisade.config" -}}
{{- $cfg := fromYaml .Values.config -}}
{{- if eq (toJson (get $cfg "exemptNamespaces")) (toJson .Values.exemptNamespaces) -}}
{{- .Values.config -}}
{{- else -}}
{{- $_ := set $cfg "exemptNamespaces" .Values.exemptNamespaces -}}
{{- toYaml $cfg -}}
{{- end -}}
{{- end -}}

{{/* The policies ConfigMap's name: a content hash rolls the Deployment on change. */}}
{{- define "palisade.policiesName" -}}
{{- printf "palisade-policies-%s" (sha256sum (printf "%s\n---\n%s" (include "palisade.config" .) .Values.sidecarTemplate) | trunc 10) -}}
{{- end -}}

{{/* Refuse what cannot work. */}}
{{- define "palisade.checks" -}}
{{- if not (has .Release.Namespace .Values.exemptNamespaces) -}}
{{- fail (printf "exemptNamespaces must include the release namespace %s: palisade's own pods must never wait for palisade" .Release.Namespace) -}}
{{- end -}}
{{- if not (has .Values.mode (list "enforce" "warn" "dry-run")) -}}
{{- fail (printf "mode must be enforce, warn or dry-run, not %s" .Values.mode) -}}
{{- end -}}
{{- if not (has .Values.failurePolicy (list "Fail" "Ignore")) -}}
{{- fail (printf "failurePolicy must be Fail or Ignore, not %s" .Values.failurePolicy) -}}
{{- end -}}
{{- if not (has .Values.certificates.source (list "selfManaged" "certManager")) -}}
{{- fail (printf "certificates.source must be selfManaged or certManager, not %s" .Values.certificates.source) -}}
{{- end -}}
{{- end -}}
