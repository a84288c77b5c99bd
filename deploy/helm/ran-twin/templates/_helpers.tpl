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

{{/* "true" when the pods mount kafka.security.tls.existingSecret: a TLS protocol (SSL, SASL_SSL) and a Secret given. */}}
{{- define "ran-twin.kafkaTls" -}}
{{- $sec := .Values.kafka.security -}}
{{- if and $sec.tls.existingSecret (has $sec.protocol (list "SSL" "SASL_SSL")) -}}true{{- end -}}
{{- end -}}

{{/* The volume and the mount of the Kafka TLS Secret, for the pods that talk to Kafka. */}}
{{- define "ran-twin.kafkaTlsVolume" -}}
{{- if include "ran-twin.kafkaTls" . -}}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.security.tls.existingSecret }}
    defaultMode: 0440
{{- end -}}
{{- end -}}

{{- define "ran-twin.kafkaTlsMount" -}}
{{- if include "ran-twin.kafkaTls" . -}}
- {name: kafka-tls, mountPath: /run/secrets/kafka-tls, readOnly: true}
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
{{- fail "secrets.create is false and secrets.existingSecret is empty: name the Secret that holds api-tokens, influx-token, webhook-bearer-token, ledger-url, cm-adapter-options and kafka-sasl-password" -}}
{{- end -}}
{{- $sec := .Values.kafka.security -}}
{{- if hasPrefix "SASL_" $sec.protocol -}}
{{- if not $sec.saslMechanism -}}
{{- fail (printf "kafka.security.saslMechanism is empty: kafka.security.protocol=%s needs PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512" $sec.protocol) -}}
{{- end -}}
{{- if not $sec.saslUsername -}}
{{- fail (printf "kafka.security.saslUsername is empty: kafka.security.protocol=%s needs the SASL user name" $sec.protocol) -}}
{{- end -}}
{{- if and (not .Values.secrets.existingSecret) (not .Values.secrets.kafkaSaslPassword) -}}
{{- fail (printf "secrets.kafkaSaslPassword is empty: kafka.security.protocol=%s needs the SASL password (or secrets.existingSecret with the key kafka-sasl-password)" $sec.protocol) -}}
{{- end -}}
{{- end -}}
{{- if and (has $sec.protocol (list "SSL" "SASL_SSL")) $sec.tls.clientCert (not $sec.tls.existingSecret) -}}
{{- fail (printf "kafka.security.tls.clientCert is true but kafka.security.tls.existingSecret is empty: name the Secret that holds ca.crt, tls.crt and tls.key (kafka.security.protocol=%s)" $sec.protocol) -}}
{{- end -}}
{{- end -}}

{{/* Environment shared by every container: Kafka (and its client security) from the values, secrets as
TWIN_* variables; only the security variables that apply to kafka.security.protocol are set. */}}
{{- define "ran-twin.env" -}}
- name: TWIN_KAFKA__BOOTSTRAP_SERVERS
  value: {{ .Values.kafka.bootstrapServers | quote }}
- name: TWIN_KAFKA__PARTITIONS
  value: {{ .Values.kafka.partitions | quote }}
- name: TWIN_KAFKA__GROUP_ID
  value: {{ .Values.kafka.groupId | quote }}
{{- $sec := .Values.kafka.security }}
- name: TWIN_KAFKA__SECURITY_PROTOCOL
  value: {{ $sec.protocol | quote }}
{{- if hasPrefix "SASL_" $sec.protocol }}
- name: TWIN_KAFKA__SASL_MECHANISM
  value: {{ $sec.saslMechanism | quote }}
- name: TWIN_KAFKA__SASL_USERNAME
  value: {{ $sec.saslUsername | quote }}
- name: TWIN_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "ran-twin.secretName" . }}, key: kafka-sasl-password, optional: true}
{{- end }}
{{- if has $sec.protocol (list "SSL" "SASL_SSL") }}
- name: TWIN_KAFKA__SSL_CHECK_HOSTNAME
  value: {{ $sec.tls.checkHostname | toString | quote }}
{{- if include "ran-twin.kafkaTls" . }}
- name: TWIN_KAFKA__SSL_CAFILE
  value: /run/secrets/kafka-tls/ca.crt
{{- if $sec.tls.clientCert }}
- name: TWIN_KAFKA__SSL_CERTFILE
  value: /run/secrets/kafka-tls/tls.crt
- name: TWIN_KAFKA__SSL_KEYFILE
  value: /run/secrets/kafka-tls/tls.key
{{- end }}
{{- end }}
{{- end }}
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
