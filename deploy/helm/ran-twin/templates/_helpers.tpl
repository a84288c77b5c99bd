{{/* Names and labels shared by the templates. */}}
{{- define "ran-twin.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ran-twin.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ran-twin.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ran-twin.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "ran-twin.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- include "ran-twin.fullname" . }}-secrets
{{- end -}}
{{- end -}}

{{- define "ran-twin.claimName" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-state" (include "ran-twin.fullname" .)) -}}
{{- end -}}

{{/* Checks across values that values.schema.json cannot express; rendering fails with the reason. */}}
{{- define "ran-twin.validate" -}}
{{- if gt (int .Values.worker.replicas) (int .Values.kafka.partitions) -}}
{{- fail (printf "worker.replicas (%d) must not exceed kafka.partitions (%d): a worker beyond the partition count gets no partition and sits idle" (int .Values.worker.replicas) (int .Values.kafka.partitions)) -}}
{{- end -}}
{{- if and .Values.secrets.create (not .Values.secrets.existingSecret) (not .Values.secrets.apiTokens) .Values.api.enabled -}}
{{- fail "secrets.apiTokens is empty: give the API's token file (or secrets.existingSecret, or api.enabled=false)" -}}
{{- end -}}
{{- if and (not .Values.secrets.create) (not .Values.secrets.existingSecret) -}}
{{- fail "secrets.create is false and secrets.existingSecret is empty: name the Secret that holds api-tokens, influx-token, webhook-bearer-token, ledger-url and cm-adapter-options" -}}
{{- end -}}
{{- end -}}

{{/* Environment shared by every container: Kafka from the values, secrets as TWIN_* variables. */}}
{{- define "ran-twin.env" -}}
- name: TWIN_KAFKA__BOOTSTRAP_SERVERS
  value: {{ .Values.kafka.bootstrapServers | quote }}
- name: TWIN_KAFKA__PARTITIONS
  value: {{ .Values.kafka.partitions | quote }}
- name: TWIN_KAFKA__GROUP_ID
  value: {{ .Values.kafka.groupId | quote }}
- name: TWIN_TIMESERIES__TOKEN
  valueFrom:
    secretKeyRef: {name: {{ include "ran-twin.secretName" . }}, key: influx-token, optional: true}
- name: TWIN_WEBHOOK__BEARER_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ include "ran-twin.secretName" . }}, key: webhook-bearer-token, optional: true}
- name: TWIN_CM__LEDGER
  valueFrom:
    secretKeyRef: {name: {{ include "ran-twin.secretName" . }}, key: ledger-url, optional: true}
- name: TWIN_CM__ADAPTER_OPTIONS
  valueFrom:
    secretKeyRef: {name: {{ include "ran-twin.secretName" . }}, key: cm-adapter-options, optional: true}
{{- end -}}
