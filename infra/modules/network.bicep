// Optional (enableNatGateway): a VNet whose integration subnet sends all outbound traffic
// through a NAT gateway with one static public IP. Flex Consumption apps otherwise leave
// from shared, changing addresses, which a conditional-access named location cannot pin.
// Flex Consumption VNet integration needs the subnet delegated to Microsoft.App/environments
// (not Microsoft.Web/serverFarms) and the Microsoft.App resource provider registered.
param virtualNetworkName string
param subnetName string
param natGatewayName string
param publicIpName string
param location string
param tags object = {}

@description('Address space of the VNet.')
param addressPrefix string = '10.40.0.0/16'

@description('Integration subnet; one address per instance, so /24 leaves room for maximumInstanceCount.')
param subnetPrefix string = '10.40.0.0/24'

resource publicIp 'Microsoft.Network/publicIPAddresses@2024-05-01' = {
  name: publicIpName
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Regional'
  }
  properties: {
    publicIPAllocationMethod: 'Static'
    publicIPAddressVersion: 'IPv4'
    idleTimeoutInMinutes: 4
  }
}

resource natGateway 'Microsoft.Network/natGateways@2024-05-01' = {
  name: natGatewayName
  location: location
  tags: tags
  sku: {
    name: 'Standard'
  }
  properties: {
    idleTimeoutInMinutes: 4
    publicIpAddresses: [
      {
        id: publicIp.id
      }
    ]
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: virtualNetworkName
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: subnetName
        properties: {
          addressPrefix: subnetPrefix
          natGateway: {
            id: natGateway.id
          }
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
    ]
  }
}

output subnetId string = vnet.properties.subnets[0].id
output natPublicIpAddress string = publicIp.properties.ipAddress
