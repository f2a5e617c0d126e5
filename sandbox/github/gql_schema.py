"""The slice of GitHub's GraphQL schema the sandbox serves, in SDL, for graphql-core.

It covers what gh 2.23.0 sends for `repo create` (mutation createRepository), `repo view`
(query repository with any field `--json` can name) and `repo list` (repositoryOwner's
repositories), plus viewer/user/organization/node/rateLimit. Field names, argument names and
nullability follow GitHub's public schema; objects the sandbox never has (issues, labels,
releases, ...) exist as types so that gh's selections validate, and always come back empty.
Resolvers live in gql_resolvers.
"""

from __future__ import annotations

from graphql import GraphQLSchema, build_schema

_PAGE = "first: Int, after: String, last: Int, before: String"
_REPOSITORIES = (
    f"repositories({_PAGE}, privacy: RepositoryPrivacy, isFork: Boolean, isLocked: Boolean, "
    "ownerAffiliations: [RepositoryAffiliation], affiliations: [RepositoryAffiliation], "
    "orderBy: RepositoryOrder): RepositoryConnection!"
)

SDL = f"""
scalar DateTime
scalar URI
scalar HTML
scalar GitObjectID
scalar GitSSHRemote

enum RepositoryVisibility {{ PRIVATE PUBLIC INTERNAL }}
enum RepositoryPermission {{ ADMIN MAINTAIN WRITE TRIAGE READ }}
enum PullRequestMergeMethod {{ MERGE SQUASH REBASE }}
enum SubscriptionState {{ UNSUBSCRIBED SUBSCRIBED IGNORED }}
enum IssueState {{ OPEN CLOSED }}
enum PullRequestState {{ OPEN CLOSED MERGED }}
enum MilestoneState {{ OPEN CLOSED }}
enum ProjectState {{ OPEN CLOSED }}
enum OrderDirection {{ ASC DESC }}
enum LanguageOrderField {{ SIZE }}
enum FundingPlatform {{
  GITHUB PATREON OPEN_COLLECTIVE KO_FI TIDELIFT COMMUNITY_BRIDGE LIBERAPAY ISSUEHUNT
  LFX_CROWDFUNDING POLAR BUY_ME_A_COFFEE THANKS_DEV CUSTOM
}}
input LanguageOrder {{ field: LanguageOrderField!, direction: OrderDirection! }}
enum RepositoryPrivacy {{ PUBLIC PRIVATE }}
enum RepositoryAffiliation {{ OWNER COLLABORATOR ORGANIZATION_MEMBER }}
enum RepositoryOrderField {{ CREATED_AT UPDATED_AT PUSHED_AT NAME STARGAZERS }}
input RepositoryOrder {{ field: RepositoryOrderField!, direction: OrderDirection! }}
type PageInfo {{
  hasNextPage: Boolean!, hasPreviousPage: Boolean!, startCursor: String, endCursor: String
}}
type RepositoryConnection {{
  totalCount: Int!, totalDiskUsage: Int!, nodes: [Repository], pageInfo: PageInfo!
}}

interface Node {{ id: ID! }}
interface GitObject {{ id: ID!, oid: GitObjectID!, abbreviatedOid: String! }}
interface RepositoryOwner {{
  id: ID!
  login: String!
  url: URI!
  resourcePath: URI!
  avatarUrl(size: Int): URI!
  repository(name: String!, followRenames: Boolean = true): Repository
  {_REPOSITORIES}
}}

type Query {{
  repository(owner: String!, name: String!, followRenames: Boolean = true): Repository
  viewer: User!
  user(login: String!): User
  organization(login: String!): Organization
  repositoryOwner(login: String!): RepositoryOwner
  node(id: ID!): Node
  rateLimit(dryRun: Boolean = false): RateLimit
}}

type Mutation {{
  createRepository(input: CreateRepositoryInput!): CreateRepositoryPayload
}}

input CreateRepositoryInput {{
  name: String!
  ownerId: ID
  description: String
  visibility: RepositoryVisibility!
  template: Boolean
  homepageUrl: URI
  hasWikiEnabled: Boolean
  hasIssuesEnabled: Boolean
  teamId: ID
  clientMutationId: String
}}

type CreateRepositoryPayload {{
  clientMutationId: String
  repository: Repository
}}

type Repository implements Node {{
  id: ID!
  databaseId: Int
  name: String!
  nameWithOwner: String!
  description: String
  descriptionHTML: HTML!
  shortDescriptionHTML(limit: Int = 200): HTML!
  url: URI!
  resourcePath: URI!
  homepageUrl: URI
  sshUrl: GitSSHRemote!
  mirrorUrl: URI
  openGraphImageUrl: URI!
  usesCustomOpenGraphImage: Boolean!
  securityPolicyUrl: URI
  isPrivate: Boolean!
  isArchived: Boolean!
  isTemplate: Boolean!
  isEmpty: Boolean!
  isFork: Boolean!
  isMirror: Boolean!
  isLocked: Boolean!
  isDisabled: Boolean!
  isSecurityPolicyEnabled: Boolean
  isUserConfigurationRepository: Boolean!
  isInOrganization: Boolean!
  isBlankIssuesEnabled: Boolean!
  visibility: RepositoryVisibility!
  createdAt: DateTime!
  updatedAt: DateTime!
  pushedAt: DateTime
  archivedAt: DateTime
  diskUsage: Int
  forkCount: Int!
  stargazerCount: Int!
  hasIssuesEnabled: Boolean!
  hasProjectsEnabled: Boolean!
  hasWikiEnabled: Boolean!
  hasDiscussionsEnabled: Boolean!
  mergeCommitAllowed: Boolean!
  rebaseMergeAllowed: Boolean!
  squashMergeAllowed: Boolean!
  autoMergeAllowed: Boolean!
  deleteBranchOnMerge: Boolean!
  viewerPermission: RepositoryPermission
  viewerCanAdminister: Boolean!
  viewerHasStarred: Boolean!
  viewerSubscription: SubscriptionState
  viewerDefaultCommitEmail: String
  viewerDefaultMergeMethod: PullRequestMergeMethod!
  viewerPossibleCommitEmails: [String!]
  owner: RepositoryOwner!
  defaultBranchRef: Ref
  repositoryTopics({_PAGE}): RepositoryTopicConnection!
  parent: Repository
  templateRepository: Repository
  primaryLanguage: Language
  licenseInfo: License
  codeOfConduct: CodeOfConduct
  latestRelease: Release
  contactLinks: [RepositoryContactLink!]
  fundingLinks: [FundingLink!]!
  issueTemplates: [IssueTemplate!]
  pullRequestTemplates: [PullRequestTemplate!]
  assignableUsers({_PAGE}, query: String): UserConnection!
  mentionableUsers({_PAGE}, query: String): UserConnection!
  watchers({_PAGE}): UserConnection!
  issues({_PAGE}, states: [IssueState!], labels: [String!]): IssueConnection!
  pullRequests({_PAGE}, states: [PullRequestState!], labels: [String!], headRefName: String,
               baseRefName: String): PullRequestConnection!
  labels({_PAGE}, query: String): LabelConnection
  milestones({_PAGE}, states: [MilestoneState!], query: String): MilestoneConnection
  projects({_PAGE}, states: [ProjectState!], search: String): ProjectConnection!
  languages({_PAGE}, orderBy: LanguageOrder): LanguageConnection
}}

type Ref implements Node {{
  id: ID!
  name: String!
  prefix: String!
  target: GitObject
}}

type Commit implements Node & GitObject {{
  id: ID!
  oid: GitObjectID!
  abbreviatedOid: String!
  message: String!
  messageHeadline: String!
  committedDate: DateTime!
  authoredDate: DateTime!
  url: URI!
}}

type User implements Node & RepositoryOwner {{
  id: ID!
  databaseId: Int
  login: String!
  name: String
  email: String!
  company: String
  bio: String
  location: String
  url: URI!
  resourcePath: URI!
  avatarUrl(size: Int): URI!
  createdAt: DateTime!
  isViewer: Boolean!
  isSiteAdmin: Boolean!
  repository(name: String!, followRenames: Boolean = true): Repository
  {_REPOSITORIES}
}}

type Organization implements Node & RepositoryOwner {{
  id: ID!
  databaseId: Int
  login: String!
  name: String
  email: String
  description: String
  url: URI!
  resourcePath: URI!
  avatarUrl(size: Int): URI!
  createdAt: DateTime!
  repository(name: String!, followRenames: Boolean = true): Repository
  {_REPOSITORIES}
}}

type RepositoryTopicConnection {{ totalCount: Int!, nodes: [RepositoryTopic] }}
type RepositoryTopic implements Node {{ id: ID!, topic: Topic!, url: URI!, resourcePath: URI! }}
type Topic implements Node {{ id: ID!, name: String! }}

type UserConnection {{ totalCount: Int!, nodes: [User] }}
type IssueConnection {{ totalCount: Int!, nodes: [Issue] }}
type Issue implements Node {{
  id: ID!, number: Int!, title: String!, url: URI!, state: IssueState!
}}
type PullRequestConnection {{ totalCount: Int!, nodes: [PullRequest] }}
type PullRequest implements Node {{
  id: ID!, number: Int!, title: String!, url: URI!, state: PullRequestState!
}}
type LabelConnection {{ totalCount: Int!, nodes: [Label] }}
type Label implements Node {{ id: ID!, name: String!, color: String!, description: String }}
type MilestoneConnection {{ totalCount: Int!, nodes: [Milestone] }}
type Milestone implements Node {{
  id: ID!, number: Int!, title: String!, description: String, dueOn: DateTime
}}
type ProjectConnection {{ totalCount: Int!, nodes: [Project] }}
type Project implements Node {{
  id: ID!, name: String!, number: Int!, body: String, resourcePath: URI!, url: URI!
}}
type LanguageConnection {{
  totalCount: Int!, totalSize: Int!, edges: [LanguageEdge], nodes: [Language]
}}
type LanguageEdge {{ size: Int!, node: Language! }}
type Language implements Node {{ id: ID!, name: String!, color: String }}
type License implements Node {{
  id: ID!, key: String!, name: String!, nickname: String, spdxId: String, url: URI
}}
type CodeOfConduct implements Node {{
  id: ID!, key: String!, name: String!, url: URI, body: String
}}
type Release implements Node {{
  id: ID!, name: String, tagName: String!, url: URI!, publishedAt: DateTime,
  isPrerelease: Boolean!, isDraft: Boolean!
}}
type RepositoryContactLink {{ about: String!, name: String!, url: URI! }}
type FundingLink {{ platform: FundingPlatform!, url: URI! }}
type IssueTemplate {{
  name: String!, title: String, body: String, about: String, filename: String!
}}
type PullRequestTemplate {{ body: String, filename: String }}

type RateLimit {{
  limit: Int!, cost: Int!, remaining: Int!, resetAt: DateTime!, used: Int!, nodeCount: Int!
}}
"""


def schema() -> GraphQLSchema:
    return build_schema(SDL)
