// Key Vault for the app's secrets: the Graph client secret now; tenant ACS connection
// strings later. Access by Azure RBAC only (no access policies): the app identity is
// Key Vault Secrets User (read), nobody else by default.
param name string
param location string
param tags object = {}

@description('Purge protection; irreversible once on.')
param enablePurgeProtection bool = false

@secure()
@description('GraphClientSecret value. Written only when not empty (as a new version of the secret): an empty value leaves the secret in the vault as it is, never blanks it.')
param graphClientSecret string = ''

var graphClientSecretName = 'GraphClientSecret'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // The API refuses an explicit false: leave the property out unless it is turned on.
    enablePurgeProtection: enablePurgeProtection ? true : null
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// Conditional, not a PUT of an empty value: a provision without the value (the azd
// environment no longer holds it) skips the secret, and the deployment is incremental,
// so the stored secret stays. main.bicep keeps the app setting's reference to it.
resource graphSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(graphClientSecret)) {
  parent: vault
  name: graphClientSecretName
  properties: {
    value: graphClientSecret
    contentType: 'text/plain'
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
output graphClientSecretName string = graphClientSecretName
